//! Statements per operation, counted by the server: pg_stat_statements, switched on only while
//! counting (`pg_stat_statements.track` is `none` otherwise, so it costs the timed rounds
//! nothing). The same pass checks that each floor still sends its store's statements, word for
//! word but the schema and the parameters' numbering: the floors are only a measure of the store
//! while they do.

use std::collections::BTreeSet;

use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};
use store::Record;

use crate::stacks::{BoxError, Kind, Named, Op, Sample};

/// Per stack: statements completed per operation, in `Op::ALL` order, and statements that
/// failed per operation (pg_stat_statements records only the statements that complete, so
/// failures are counted from the server's log; `None` where the log cannot be read).
pub type Counts = Vec<(String, [f64; 4], Option<[f64; 4]>)>;

const SAMPLES: usize = 50;

async fn exec(conn: &DatabaseConnection, sql: &str) -> Result<(), BoxError> {
    conn.execute_unprepared(sql).await?;
    Ok(())
}

async fn calls(conn: &DatabaseConnection) -> Result<f64, BoxError> {
    let row = conn
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT COALESCE(SUM(calls), 0)::float8 FROM pg_stat_statements \
             WHERE query NOT ILIKE '%pg_stat_statements%' AND query NOT ILIKE '%pg_reload_conf%'",
        ))
        .await?
        .ok_or("pg_stat_statements returned no row")?;
    Ok(row.try_get_by_index::<f64>(0)?)
}

/// The session-table statements run since the last reset, their schema written `"…"` and
/// every parameter and number `$?`. pg_stat_statements writes a statement's numbers as
/// parameters (`"version" + 1` as `"version" + $9`) only when it was prepared while tracking was
/// on: one a pool's connection prepared during the timed rounds (tracking off) keeps its text as
/// sent, one another connection prepares while counting does not, so the same statement could
/// read two ways.
async fn statements(conn: &DatabaseConnection) -> Result<BTreeSet<String>, BoxError> {
    let rows = conn
        .query_all_raw(Statement::from_string(
            DbBackend::Postgres,
            r#"SELECT DISTINCT regexp_replace(
                   regexp_replace(query, '"[^"]*"\."session"', '"…"."session"', 'g'),
                   '\$[0-9]+|\m[0-9]+\M', '$?', 'g')
               FROM pg_stat_statements WHERE query LIKE '%"session"%'"#,
        ))
        .await?;
    rows.iter()
        .map(|row| Ok(row.try_get_by_index::<String>(0)?))
        .collect()
}

/// The `ERROR:` lines in the server log so far: the cluster `scripts/bench` starts logs to
/// `server.log` in its data directory, which a superuser can read.
async fn errors(conn: &DatabaseConnection) -> Option<f64> {
    let row = conn
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT ((length(f) - length(replace(f, 'ERROR:', ''))) / 6)::float8 \
             FROM pg_read_file('server.log') f",
        ))
        .await
        .ok()??;
    row.try_get_by_index::<f64>(0).ok()
}

/// Whether the server's log is being written where [`errors`] reads it: a statement that fails
/// on purpose must add an `ERROR:` line. A cluster restarted without `-l` (by hand, say) leaves
/// `server.log` as it was, and its failures would read as none.
async fn log_is_written(conn: &DatabaseConnection) -> bool {
    let Some(before) = errors(conn).await else {
        return false;
    };
    let failing = "SELECT 'the bench checks that failures reach the log'::int";
    if exec(conn, failing).await.is_ok() {
        return false;
    }
    errors(conn).await.is_some_and(|after| after > before)
}

async fn reset(conn: &DatabaseConnection) -> Result<(), BoxError> {
    exec(conn, "SELECT pg_stat_statements_reset()").await?;
    // The reset is not instant for entries being written by other backends.
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    exec(conn, "SELECT pg_stat_statements_reset()").await
}

/// Counts the statements each stack sends per operation, and says where a floor sent other
/// statements than its store (see [`drifted_floors`]). `conn` is a superuser connection to a
/// database of the bench cluster.
pub async fn count(
    conn: &DatabaseConnection,
    stacks: &[Named],
    template: &Record,
) -> Result<(Counts, Vec<String>), BoxError> {
    exec(conn, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        .await
        .map_err(|err| {
            format!("pg_stat_statements is not loaded (shared_preload_libraries): {err}")
        })?;
    exec(conn, "ALTER SYSTEM SET pg_stat_statements.track = 'top'").await?;
    exec(conn, "SELECT pg_reload_conf()").await?;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let result = count_each(conn, stacks, template).await;
    exec(conn, "ALTER SYSTEM RESET pg_stat_statements.track").await?;
    exec(conn, "SELECT pg_reload_conf()").await?;
    let (counts, sent) = result?;
    Ok((counts, drifted_floors(stacks, &sent)))
}

/// Each floor against the store of its driver (with the same pool options): the operations
/// where they sent different statements, described. Empty when every floor sends what its store
/// does.
fn drifted_floors(stacks: &[Named], sent: &[[BTreeSet<String>; 4]]) -> Vec<String> {
    let store_of = |floor: &Named| match floor.kind {
        Kind::LeanFloor | Kind::LeanFloorTwin => Some(Kind::LeanStore),
        Kind::SqlxFloor | Kind::SqlxFloorTwin => Some(Kind::SeaOrmStore),
        _ => None,
    };
    let mut drifted = Vec::new();
    for (f, floor) in stacks.iter().enumerate() {
        let Some(kind) = store_of(floor) else {
            continue;
        };
        let Some(s) = stacks
            .iter()
            .position(|named| named.kind == kind && named.tuned == floor.tuned)
        else {
            continue;
        };
        for (slot, op) in Op::ALL.into_iter().enumerate() {
            if sent[f][slot] != sent[s][slot] {
                drifted.push(format!(
                    "{} {}: the floor sent {:?}, {} sent {:?}",
                    floor.name,
                    op.name(),
                    sent[f][slot],
                    stacks[s].name,
                    sent[s][slot]
                ));
            }
        }
    }
    drifted
}

async fn count_each(
    conn: &DatabaseConnection,
    stacks: &[Named],
    template: &Record,
) -> Result<(Counts, Vec<[BTreeSet<String>; 4]>), BoxError> {
    let mut counts = Vec::new();
    let mut all_sent = Vec::new();
    let log_is_written = log_is_written(conn).await;
    for named in stacks {
        let mut sent: [BTreeSet<String>; 4] = Default::default();
        let samples: Vec<Sample> = (0..SAMPLES).map(|_| Sample::new(template)).collect();
        let mut per_op = [0.0; 4];
        let mut failed = log_is_written.then_some([0.0; 4]);
        for (slot, op) in Op::ALL.into_iter().enumerate() {
            if op == Op::Save {
                // Uncounted: the load a request does before it saves.
                for sample in &samples {
                    named.stack.prepare_save(sample).await?;
                }
            }
            reset(conn).await?;
            let errors_before = errors(conn).await;
            for sample in &samples {
                match op {
                    Op::Create => named.stack.create(sample).await?,
                    Op::Save => named.stack.save(sample).await?,
                    Op::Load => {
                        named.stack.load(sample).await?;
                    }
                    Op::Delete => named.stack.delete(sample).await?,
                }
            }
            per_op[slot] = calls(conn).await? / SAMPLES as f64;
            sent[slot] = statements(conn).await?;
            match (errors_before, errors(conn).await, failed.as_mut()) {
                (Some(before), Some(after), Some(failed)) => {
                    failed[slot] = (after - before) / SAMPLES as f64;
                }
                _ => failed = None,
            }
        }
        counts.push((named.name.clone(), per_op, failed));
        all_sent.push(sent);
    }
    Ok((counts, all_sent))
}
