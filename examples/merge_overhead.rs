//! One `create`, `load` and `save` (changing one key) of a 4-key session, `N` times, on the
//! in-memory repository: the store's own work per operation, without a database. BENCHMARKS.md
//! counts its instructions:
//!
//! ```sh
//! cargo build --release --example merge_overhead --features testing
//! valgrind --tool=callgrind target/release/examples/merge_overhead 2001
//! valgrind --tool=callgrind target/release/examples/merge_overhead 1
//! ```
use serde_json::json;
use tower_sessions_seaorm_store::{
    testing::InMemoryRepository, Id, Record, RepositoryStore, SessionStore,
};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let n: usize = std::env::args().nth(1).unwrap().parse().unwrap();
    let store = RepositoryStore::from_repository(InMemoryRepository::new());
    let template = Record {
        id: Id::default(),
        data: [
            ("user_id".to_owned(), json!(42)),
            ("name".to_owned(), json!("Ada Lovelace")),
            ("roles".to_owned(), json!(["admin", "ops"])),
            ("csrf".to_owned(), json!("0123456789abcdef0123456789abcdef")),
        ]
        .into(),
        expiry_date: time::OffsetDateTime::now_utc() + time::Duration::hours(1),
    };
    for _ in 0..n {
        let mut record = template.clone();
        record.id = Id::default();
        store.create(&mut record).await.unwrap();
        let mut loaded = store.load(&record.id).await.unwrap().unwrap();
        loaded.data.insert("seen".to_owned(), json!(true));
        store.save(&loaded).await.unwrap();
    }
}
