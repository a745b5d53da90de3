//! The store on a session table distributed by Citus (`with_distributed_table`), on a real
//! cluster: a coordinator and two workers that `scripts/test` starts when given `CITUS_SOURCE`
//! (`scripts/lib/citus.sh`). The behaviour and features suites on the SeaORM and the lean
//! store, encryption, cleanup, migrations run again and racing, many clients at once, and how
//! each statement routes (one shard or all of them).
//!
//! Built without `CITUS_URL` (no cluster), this file is one test that says loudly that the
//! Citus suite did not run, and how to run it.

mod common;

#[cfg(not(citus_cluster))]
#[test]
fn the_citus_suite_did_not_run() {
    use std::io::Write;
    // Straight to the process's stderr: the test harness captures `eprintln!` of a passing
    // test, and this must be seen.
    let _ = writeln!(
        std::io::stderr(),
        "\n\n**********************************************************************\n\
         THE CITUS SUITE DID NOT RUN: no Citus cluster (CITUS_URL was unset when the tests \
         were built).\nRun it with: {}\n\
         **********************************************************************\n",
        common::citus::HOW_TO_RUN
    );
}

/// On plain PostgreSQL (`DATABASE_URL`), no cluster needed.
#[tokio::test]
async fn migrating_a_distributed_table_without_citus_says_what_is_missing() {
    let fixture = common::PgFixture::new().await;
    let err = tower_sessions_seaorm_store::PostgresStore::new(fixture.conn.clone())
        .with_schema_name(&fixture.schema)
        .unwrap()
        .with_distributed_table()
        .unwrap()
        .migrate()
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("needs the Citus extension in this database"),
        "{err}"
    );
    fixture.finish().await;
}

#[cfg(citus_cluster)]
behaviour_suite!(common::citus::CitusFixture::new());
#[cfg(citus_cluster)]
features_suite!(crate::common::citus::CitusFixture::new());

#[cfg(citus_cluster)]
mod contract {
    crate::repository_contract!(crate::common::citus::CitusFixture::new());
}

/// The lean store (tokio-postgres) on a distributed table.
#[cfg(all(citus_cluster, feature = "tokio-postgres"))]
mod lean {
    crate::behaviour_suite!(crate::common::citus::LeanCitusFixture::new());
    crate::features_suite!(crate::common::citus::LeanCitusFixture::new());

    mod contract {
        crate::repository_contract!(crate::common::citus::LeanCitusFixture::new());
    }
}

/// The behaviour suite with every session encrypted at rest.
#[cfg(all(citus_cluster, feature = "encryption"))]
mod encrypted {
    use tower_sessions_seaorm_store::{
        codec::{Encrypted, KeyRing, MessagePackCodec},
        PostgresStore,
    };

    fn encrypted(store: PostgresStore) -> PostgresStore<Encrypted<MessagePackCodec>> {
        store.with_codec(Encrypted::new(
            MessagePackCodec,
            KeyRing::new(1, [0x11; 32]),
        ))
    }

    // Not the three tests that write rows by hand: an encrypted store reads them as tampered
    // with (tests/encrypted_codec.rs covers that on PostgreSQL).
    crate::behaviour_suite!(@tests crate::common::citus::CitusFixture::new(); encrypted;
        round_trip,
        load_of_an_unknown_id_is_none,
        create_with_a_taken_id_keeps_the_old_session_and_takes_a_new_id,
        concurrent_creates_with_one_preset_id_all_survive_with_distinct_ids,
        save_of_a_missing_session_writes_nothing,
        a_session_deleted_after_it_was_loaded_stays_deleted_when_saved,
        concurrent_saves_of_one_id_all_succeed,
        an_expired_session_is_never_loaded,
        delete_is_idempotent,
        delete_expired_removes_only_expired_sessions_in_batches,
        a_one_mib_session_round_trips_with_a_raised_limit,
        expiry_round_trips_to_the_nanosecond,
    );
}

#[cfg(citus_cluster)]
#[path = "citus_suite/on_the_cluster.rs"]
mod on_the_cluster;
