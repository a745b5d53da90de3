//! The store through PgBouncer in transaction pooling mode (`PGBOUNCER_URL`, which
//! `scripts/test` sets): the behavioural suite, concurrent migrations, and many clients sharing
//! few server connections, all with SeaORM's default connect options.

mod common;

use std::{process::Command, time::Duration};

use common::{
    pgbouncer::{connect_through_pgbouncer, pgbouncer_options, pgbouncer_url},
    suite::{in_a_day, record},
    unique_name,
};
use serde_json::json;
use tower_sessions_seaorm_store::{
    sea_orm::{ConnectionTrait, Database},
    PostgresStore, SessionStore,
};

behaviour_suite!(common::pgbouncer::pgbouncer_fixture());
features_suite!(crate::common::pgbouncer::pgbouncer_fixture());

/// PgBouncer's own view of a setting, from its admin console (`SHOW CONFIG`).
fn pgbouncer_setting(name: &str) -> String {
    let url = pgbouncer_url();
    let admin = format!("{}/pgbouncer", url.rsplit_once('/').expect("a database").0);
    let output = Command::new("psql")
        .args([admin.as_str(), "-Atc", "SHOW CONFIG"])
        .output()
        .expect("psql (apt-get install postgresql-client; scripts/test installs it)");
    assert!(
        output.status.success(),
        "PGBOUNCER_URL ({url}) must be a PgBouncer whose admin console answers: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .find_map(|line| {
            let mut fields = line.split('|');
            (fields.next() == Some(name)).then(|| fields.next().unwrap_or_default().to_owned())
        })
        .unwrap_or_else(|| panic!("PgBouncer reports no `{name}`"))
}

#[test]
fn the_pooler_under_test_is_pgbouncer_in_transaction_mode_tracking_prepared_statements() {
    assert_eq!(pgbouncer_setting("pool_mode"), "transaction");
    let tracked: u32 = pgbouncer_setting("max_prepared_statements")
        .parse()
        .expect("a number");
    assert!(tracked >= 100, "max_prepared_statements = {tracked}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_concurrent_migrations_through_pgbouncer_all_succeed() {
    let conn = connect_through_pgbouncer().await;
    let schema = unique_name("ts_bouncer_migrate");
    let replica = || {
        PostgresStore::new(conn.clone())
            .with_schema_name(&schema)
            .unwrap()
    };
    common::migrate_concurrently(8, replica, "through PgBouncer").await;

    let store = PostgresStore::new(conn.clone())
        .with_schema_name(&schema)
        .unwrap();
    let mut rec = record(in_a_day());
    store.create(&mut rec).await.unwrap();
    assert_eq!(
        crate::common::without_base(store.load(&rec.id).await.unwrap()),
        Some(rec)
    );
    conn.execute_unprepared(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_clients_sharing_fewer_server_connections_all_succeed() {
    // 64 client connections, while PgBouncer gives the database 20 server connections: every
    // client's statements run on server connections that other clients prepared theirs on.
    let mut options = pgbouncer_options(&pgbouncer_url());
    options
        .max_connections(64)
        .min_connections(64)
        .acquire_timeout(Duration::from_secs(30));
    let conn = Database::connect(options)
        .await
        .expect("connect through PgBouncer");
    let fixture = common::PgFixture::on(conn).await;

    let tasks: Vec<_> = (0..64)
        .map(|client| {
            let store = fixture.store.clone();
            tokio::spawn(async move {
                for round in 0..10 {
                    let mut rec = record(in_a_day());
                    store.create(&mut rec).await?;
                    rec.data.insert("round".into(), json!([client, round]));
                    store.save(&rec).await?;
                    assert_eq!(
                        crate::common::without_base(store.load(&rec.id).await?).as_ref(),
                        Some(&rec)
                    );
                    store.delete(&rec.id).await?;
                    assert_eq!(store.load(&rec.id).await?, None);
                }
                Ok::<_, tower_sessions_seaorm_store::session_store::Error>(())
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().expect("every operation succeeds");
    }
    fixture.finish().await;
}
