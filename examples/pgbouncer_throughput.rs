//! Load/save throughput at 64 and 256 concurrent clients, straight to PostgreSQL and through
//! PgBouncer in transaction pooling mode. The numbers in SCALING.md come from here.
//!
//! ```sh
//! scripts/test --test pgbouncer_suite      # starts PostgreSQL and PgBouncer, prints PGBOUNCER_URL
//! PGBOUNCER_URL=postgres://postgres@127.0.0.1:16432/test \
//!   cargo run --release --example pgbouncer_throughput
//! ```
//!
//! Each point runs for `SECONDS_PER_POINT` (3 s, after a 0.5 s warm-up): every client loops
//! `load` then `save` of a random session among `SESSIONS`, and each call counts as one
//! operation. Direct connections share one pool of `DIRECT_POOL` (PostgreSQL allows 100
//! connections here, shared with other work); through PgBouncer every client has a connection of
//! its own, which PgBouncer multiplexes over its server pool (20 in scripts/lib/pgbouncer.sh):
//! the way PgBouncer is used when many replicas together want more connections than the server
//! has. Everything it creates lives in a schema of its own, dropped at the end.

#[path = "common/throughput.rs"]
mod throughput;

use tower_sessions_seaorm_store::{sea_orm::ConnectionTrait, Id, PostgresStore};

use throughput::{connect, load_then_save, measure, seed, Error};

const CLIENTS: [usize; 2] = [64, 256];
const DIRECT_POOL: u32 = 32;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let direct_url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let bouncer_url = std::env::var("PGBOUNCER_URL").map_err(|_| {
        "set PGBOUNCER_URL to a PgBouncer in transaction mode (scripts/test starts one)"
    })?;
    let schema = format!("ts_throughput_{:08x}", Id::default().0 as u32);

    let setup = connect(&direct_url, 4).await?;
    let ids = seed(&PostgresStore::new(setup.clone()).with_schema_name(&schema)?).await?;
    println!("| path | clients | pool (client side) | ops/s | p50 ms | p99 ms | errors |");
    println!("|---|---|---|---|---|---|---|");
    for clients in CLIENTS {
        for (path, url, pool) in [
            ("direct", &direct_url, DIRECT_POOL),
            ("PgBouncer", &bouncer_url, clients as u32),
        ] {
            let conn = connect(url, pool).await?;
            let store = PostgresStore::new(conn.clone()).with_schema_name(&schema)?;
            let ids = ids.clone();
            let point = measure(clients, move |rng| {
                let (store, ids) = (store.clone(), ids.clone());
                async move { load_then_save(&store, &ids, rng).await }
            })
            .await;
            println!(
                "| {path} | {clients} | {pool} | {:.0} | {:.2} | {:.2} | {} |",
                point.ops_per_second, point.p50_ms, point.p99_ms, point.errors
            );
            conn.close().await?;
        }
    }
    setup
        .execute_unprepared(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
        .await?;
    Ok(())
}
