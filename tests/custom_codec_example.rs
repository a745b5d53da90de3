//! `examples/custom_codec.rs` runs against PostgreSQL (`DATABASE_URL`): a codec of the user's
//! own, plugged in through the builder, stores, loads and refuses a tampered row.
#![cfg(feature = "json")]

mod common;

#[path = "../examples/custom_codec.rs"]
#[allow(dead_code)]
mod example;

#[tokio::test]
async fn the_custom_codec_example_runs() {
    // Fails loudly, saying how to start PostgreSQL, when none answers.
    drop(common::connect_postgres(&common::database_url()).await);
    example::run(&common::database_url()).await.unwrap();
}
