//! Load/save throughput at 1 and 16 concurrent clients on one machine: a plain PostgreSQL table
//! against a table distributed by Citus, reached through its coordinator (the cost of the extra
//! hop). The numbers in SCALING.md come from here.
//!
//! ```sh
//! # scripts/lib/citus.sh (sourced by scripts/test with CITUS_SOURCE) starts the cluster
//! CITUS_URL=postgres://postgres@127.0.0.1:9700/test \
//!   cargo run --release --example citus_throughput
//! ```
//!
//! Each point runs for `SECONDS_PER_POINT` (3 s, after a 0.5 s warm-up). "load + save": every
//! client loops `load` then `save` of a random session among `SESSIONS`, and each call counts as
//! one operation. "login": every client loops `create` of a session for one of `USERS` users
//! with `with_max_sessions_per_user(3)`, so each create is followed by the trim of its user's
//! sessions (a statement on every shard on Citus). Each path has a pool of one connection per
//! client. Everything it creates lives in a schema of its own, dropped at the end. Run it on an otherwise idle machine: the coordinator,
//! both workers and the client share its cores.

#[path = "common/throughput.rs"]
mod throughput;

use std::time::Instant;

use serde_json::json;
use tower_sessions_seaorm_store::{sea_orm::ConnectionTrait, Id, PostgresStore, SessionStore};

use throughput::{connect, load_then_save, measure, seed, session, Error};

const CLIENTS: [usize; 2] = [1, 16];
const USERS: u64 = 100;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let plain_url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let citus_url = std::env::var("CITUS_URL")
        .map_err(|_| "set CITUS_URL to a Citus coordinator (scripts/lib/citus.sh starts one)")?;
    let schema = format!("ts_throughput_{:08x}", Id::default().0 as u32);

    println!("| table | operation | clients | ops/s | p50 ms | p99 ms | errors |");
    println!("|---|---|---|---|---|---|---|");
    for clients in CLIENTS {
        for (path, url, distributed) in [
            ("PostgreSQL", &plain_url, false),
            ("Citus, through the coordinator", &citus_url, true),
        ] {
            let conn = connect(url, clients as u32).await?;
            let mut store = PostgresStore::new(conn.clone()).with_schema_name(&schema)?;
            if distributed {
                store = store.with_distributed_table()?;
            }
            let ids = seed(&store).await?;
            let limited = store
                .clone()
                .with_user_key("user_id")?
                .with_max_sessions_per_user(3)?;
            for operation in ["load + save", "login"] {
                let (store, limited, ids) = (store.clone(), limited.clone(), ids.clone());
                let point = measure(clients, move |rng| {
                    let (store, limited, ids) = (store.clone(), limited.clone(), ids.clone());
                    async move {
                        if operation == "load + save" {
                            return load_then_save(&store, &ids, rng).await;
                        }
                        let mut record = session(Id::default());
                        record.data.insert("user_id".to_owned(), json!(rng % USERS));
                        let began = Instant::now();
                        let created = limited.create(&mut record).await;
                        (vec![began.elapsed()], created.is_err())
                    }
                })
                .await;
                println!(
                    "| {path} | {operation} | {clients} | {:.0} | {:.2} | {:.2} | {} |",
                    point.ops_per_second, point.p50_ms, point.p99_ms, point.errors
                );
            }
            conn.execute_unprepared(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
                .await?;
            conn.close().await?;
        }
    }
    Ok(())
}
