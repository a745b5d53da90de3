//! The size of each operation's future as tower-sessions boxes it (`SessionStore` is an
//! `async_trait`: every call allocates its future), for `PostgresStore` and
//! `LeanPostgresStore`. glibc's allocator serves an allocation of up to 1,032 bytes from a
//! per-thread cache; a larger one takes its slower path, at the allocation and at the free
//! (about 800 instructions more per save when the save's future was 1,152 bytes; BENCHMARKS.md,
//! "The merge base's hashes"). Sizes are a release build's:
//!
//! ```sh
//! cargo run --release --example future_sizes --features postgres,tokio-postgres
//! ```
//!
//! It connects to `DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/test`) only to
//! build the SeaORM store; nothing is read or written.
use std::{future::Future, pin::Pin};

use tower_sessions_seaorm_store::{
    sea_orm::Database, Id, LeanPostgresStore, PostgresStore, Record, SessionStore,
};

/// What glibc's per-thread cache serves, at most (64-bit).
const CACHED: usize = 1032;

fn size<F: Future + ?Sized>(future: Pin<Box<F>>) -> usize {
    std::mem::size_of_val(future.as_ref().get_ref())
}

fn report(name: &str, store: &impl SessionStore, record: &mut Record) {
    let id = record.id;
    let sizes = [
        ("create", size(store.create(record))),
        ("save", size(store.save(record))),
        ("load", size(store.load(&id))),
        ("delete", size(store.delete(&id))),
    ];
    for (operation, bytes) in sizes {
        let note = if bytes > CACHED {
            " (over the allocator's cache)"
        } else {
            ""
        };
        println!("{name} {operation}: {bytes} bytes{note}");
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let mut record = Record {
        id: Id::default(),
        data: Default::default(),
        expiry_date: time::OffsetDateTime::now_utc(),
    };
    let pool = deadpool_postgres::Pool::builder(deadpool_postgres::Manager::new(
        url.parse()?,
        tokio_postgres::NoTls,
    ))
    .build()?;
    report(
        "LeanPostgresStore",
        &LeanPostgresStore::new(pool),
        &mut record,
    );
    let seaorm = PostgresStore::new(Database::connect(&url).await?);
    report("PostgresStore", &seaorm, &mut record);
    Ok(())
}
