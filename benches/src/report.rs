//! The Markdown report and the chart's data.

use std::fmt::Write;

use crate::{
    chart::{self, Series},
    cleanup::CleanupReport,
    counts::Counts,
    measure::Timings,
    stacks::{Kind, Named, Op},
    CONCURRENCIES,
};

fn thousands(v: f64) -> String {
    let s = (v.round() as i64).to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

pub fn timings(md: &mut String, stacks: &[Named], timings: &Timings) {
    for c in CONCURRENCIES {
        let _ = writeln!(
            md,
            "## {c} concurrent client{}: µs per operation (operations per second)\n",
            if c == 1 { "" } else { "s" }
        );
        let _ = writeln!(md, "| stack | create | save | load | delete |");
        let _ = writeln!(md, "|---|---:|---:|---:|---:|");
        for (i, named) in stacks.iter().enumerate() {
            let _ = write!(md, "| {} |", named.name);
            for op in Op::ALL {
                match timings.median(i, op, c) {
                    Some(us) => {
                        let _ = write!(md, " {us:.1} ({}/s) |", thousands(1e6 / us));
                    }
                    None => md.push_str(" – |"),
                }
            }
            md.push('\n');
        }
        md.push('\n');
    }
    let _ = writeln!(
        md,
        "## Client CPU per operation (µs of this process's CPU time, median of the rounds)\n\n\
         What the store, driver, pool and runtime cost on the application's cores, apart from \
         waiting for the server: steadier than wall time on a busy machine.\n"
    );
    let _ = write!(md, "| stack |");
    for c in CONCURRENCIES {
        for op in Op::ALL {
            let _ = write!(md, " {} ×{c} |", op.name());
        }
    }
    let _ = writeln!(md, "\n|---|{}", "---:|".repeat(CONCURRENCIES.len() * 4));
    for (i, named) in stacks.iter().enumerate() {
        let _ = write!(md, "| {} |", named.name);
        for c in CONCURRENCIES {
            for op in Op::ALL {
                match timings.cpu_median(i, op, c) {
                    Some(us) => {
                        let _ = write!(md, " {us:.1} |");
                    }
                    None => md.push_str(" – |"),
                }
            }
        }
        md.push('\n');
    }
    md.push('\n');
}

fn find(stacks: &[Named], kind: Kind, tuned: bool) -> Option<usize> {
    stacks.iter().position(|s| {
        s.kind == kind && (s.tuned == tuned || matches!(kind, Kind::LeanFloor | Kind::LeanStore))
    })
}

/// Throughput ratios: `subject / baseline` (above 1: the subject is faster), each the median of
/// the rounds' own ratios with their interquartile range.
pub fn ratios(md: &mut String, stacks: &[Named], timings: &Timings) {
    use Kind::*;
    type Stack = (Kind, bool);
    let rows: [(&str, Stack, Stack, &str); 15] = [
        (
            "PostgresStore ÷ sqlx floor",
            (SeaOrmStore, true),
            (SqlxFloor, true),
            "≥ 0.95",
        ),
        (
            "PostgresStore ÷ sqlx floor [defaults]",
            (SeaOrmStore, false),
            (SqlxFloor, false),
            "≥ 0.90",
        ),
        (
            "LeanPostgresStore ÷ lean floor",
            (LeanStore, true),
            (LeanFloor, true),
            "≥ 0.95",
        ),
        (
            "lean store, no time-out ÷ lean floor",
            (LeanStoreUntimed, true),
            (LeanFloor, true),
            "",
        ),
        (
            "floor twin ÷ sqlx floor",
            (SqlxFloorTwin, true),
            (SqlxFloor, true),
            "(control: 1)",
        ),
        (
            "floor twin ÷ lean floor",
            (LeanFloorTwin, true),
            (LeanFloor, true),
            "(control: 1)",
        ),
        (
            "PostgresStore ÷ lean floor",
            (SeaOrmStore, true),
            (LeanFloor, true),
            "(driver gap)",
        ),
        (
            "sqlx floor ÷ lean floor",
            (SqlxFloor, true),
            (LeanFloor, true),
            "(driver gap)",
        ),
        (
            "PostgresStore ÷ sqlx-store 0.15",
            (SeaOrmStore, true),
            (SqlxStorePeer, true),
            "> 1, create ≥ 1.5",
        ),
        (
            "PostgresStore ÷ sqlx-store 0.15 [defaults]",
            (SeaOrmStore, false),
            (SqlxStorePeer, false),
            "> 1, create ≥ 1.5",
        ),
        (
            "PostgresStore ÷ seaorm-store 0.1.1",
            (SeaOrmStore, true),
            (SeaOrm01Peer, true),
            "> 1, create ≥ 1.5",
        ),
        (
            "PostgresStore ÷ seaorm-store 0.1.1 [defaults]",
            (SeaOrmStore, false),
            (SeaOrm01Peer, false),
            "> 1, create ≥ 1.5",
        ),
        (
            "LeanPostgresStore ÷ sqlx-store 0.15",
            (LeanStore, true),
            (SqlxStorePeer, true),
            "",
        ),
        (
            "LeanPostgresStore ÷ seaorm-store 0.1.1",
            (LeanStore, true),
            (SeaOrm01Peer, true),
            "",
        ),
        (
            "PostgresStore: recommended ÷ default options",
            (SeaOrmStore, true),
            (SeaOrmStore, false),
            "",
        ),
    ];
    let _ = writeln!(
        md,
        "## Throughput ratios (above 1: the first is faster)\n\n\
         The median of the rounds' own ratios (each round measures both stacks side by side), \
         with the interquartile range of those ratios in brackets.\n"
    );
    let _ = write!(md, "| ratio | goal |");
    for c in CONCURRENCIES {
        for op in Op::ALL {
            let _ = write!(md, " {} ×{c} |", op.name());
        }
    }
    let _ = writeln!(md, "\n|---|---|{}", "---:|".repeat(CONCURRENCIES.len() * 4));
    for (label, subject, baseline, goal) in rows {
        let (Some(s), Some(b)) = (
            find(stacks, subject.0, subject.1),
            find(stacks, baseline.0, baseline.1),
        ) else {
            continue;
        };
        let _ = write!(md, "| {label} | {goal} |");
        for c in CONCURRENCIES {
            for op in Op::ALL {
                match timings.paired_ratio(s, b, op, c) {
                    Some((median, q1, q3)) => {
                        let _ = write!(md, " {median:.2} ({q1:.2}–{q3:.2}) |");
                    }
                    None => md.push_str(" – |"),
                }
            }
        }
        md.push('\n');
    }
    md.push('\n');
}

fn color(kind: Kind) -> &'static str {
    match kind {
        Kind::LeanFloor | Kind::LeanFloorTwin => "#9e9e9e",
        Kind::LeanStore | Kind::LeanStoreUntimed => "#1b7837",
        Kind::SqlxFloor | Kind::SqlxFloorTwin => "#cfcfcf",
        Kind::SeaOrmStore => "#2166ac",
        Kind::SqlxStorePeer => "#d6604d",
        Kind::SeaOrm01Peer => "#f4a582",
    }
}

/// The chart of the stacks with the recommended options.
pub fn chart(stacks: &[Named], timings: &Timings) -> String {
    let series: Vec<Series> = stacks
        .iter()
        .enumerate()
        .filter(|(_, s)| s.tuned)
        .map(|(i, s)| Series {
            name: s.name.clone(),
            color: color(s.kind),
            values: CONCURRENCIES
                .iter()
                .map(|&c| Op::ALL.map(|op| timings.median(i, op, c).map_or(0.0, |us| 1e6 / us)))
                .collect(),
        })
        .collect();
    let panels: Vec<String> = CONCURRENCIES
        .iter()
        .map(|c| format!("{c} concurrent client{}", if *c == 1 { "" } else { "s" }))
        .collect();
    let panels: Vec<&str> = panels.iter().map(String::as_str).collect();
    chart::render(
        "Session store operations per second (PostgreSQL, pool of 16, recommended options)",
        &panels,
        &series,
    )
}

pub fn counts(md: &mut String, counts: &Counts) {
    let _ = writeln!(
        md,
        "## Statements per operation\n\n\
         Completed statements from pg_stat_statements (`BEGIN` and `COMMIT` count), plus, after \
         a `+`, statements the server failed (counted from its log: pg_stat_statements records \
         only completed statements); 50 operations of each kind.\n\n\
         | stack | create | save | load | delete |\n|---|---:|---:|---:|---:|"
    );
    for (name, per_op, failed) in counts {
        let _ = write!(md, "| {name} |");
        for slot in 0..4 {
            let _ = write!(md, " {:.1}", per_op[slot]);
            match failed {
                Some(failed) if failed[slot] > 0.0 => {
                    let _ = write!(md, " + {:.1} failed", failed[slot]);
                }
                Some(_) => {}
                None => md.push_str(" (failures not counted)"),
            }
            md.push_str(" |");
        }
        md.push('\n');
    }
    md.push('\n');
}

pub fn cache(md: &mut String, rows: &[(String, usize, f64)]) {
    let _ = writeln!(
        md,
        "## CachingSessionStore with moka in front: load\n\n\
         | stack | concurrency | µs/load | loads/s |\n|---|---:|---:|---:|"
    );
    for (name, c, us) in rows {
        let _ = writeln!(md, "| {name} | {c} | {us:.2} | {} |", thousands(1e6 / us));
    }
    md.push('\n');
}

pub fn cleanup(md: &mut String, r: &CleanupReport) {
    let _ = writeln!(
        md,
        "## Cleanup at scale\n\n\
         {} expired rows beside {} live ones; `delete_expired_sessions()` (batches of 10,000) \
         deleted {} rows in {:.1} s ({}/s) while 4 clients loaded live sessions.\n\n\
         | loads | count | p50 | p99 | max |\n|---|---:|---:|---:|---:|\n\
         | without cleanup (3 s) | {} | {:.2} ms | {:.2} ms | {:.2} ms |\n\
         | during cleanup | {} | {:.2} ms | {:.2} ms | {:.2} ms |\n",
        thousands(r.expired as f64),
        thousands(r.live as f64),
        thousands(r.deleted as f64),
        r.seconds,
        thousands(r.deleted as f64 / r.seconds),
        r.idle.loads,
        r.idle.p50_ms,
        r.idle.p99_ms,
        r.idle.max_ms,
        r.during.loads,
        r.during.p50_ms,
        r.during.p99_ms,
        r.during.max_ms,
    );
}

pub fn features(md: &mut String, rows: &[crate::features::Row]) {
    let _ = writeln!(
        md,
        "## What each feature costs\n\n\
         `PostgresStore`, one client; \"unchanged save\" saves a session whose values did not \
         change with its expiry 10 ms later, as a sliding expiry or `with_always_save(true)` \
         does on every request; \"save\" changes a value; \"login (create)\" creates one more \
         session for one of 100 users. Median of the rounds.\n\n\
         | store | operation | µs/op | WAL bytes/op |\n|---|---|---:|---:|"
    );
    for row in rows {
        let _ = writeln!(
            md,
            "| `{}` | {} | {:.0} | {:.0} |",
            row.label, row.operation, row.micros, row.wal_bytes
        );
    }
    let _ = writeln!(md);
}

pub fn payload(md: &mut String, rows: &crate::payload::Sizes) {
    let codecs: Vec<&str> = rows
        .first()
        .map(|(_, sizes)| sizes.iter().map(|(c, _)| c.as_str()).collect())
        .unwrap_or_default();
    let _ = writeln!(
        md,
        "## Payload: bytes in the `data` column per session\n\n| session | {} |\n|---|{}",
        codecs.join(" | "),
        "---:|".repeat(codecs.len())
    );
    for (label, sizes) in rows {
        let cells: Vec<String> = sizes.iter().map(|(_, n)| n.to_string()).collect();
        let _ = writeln!(md, "| {label} | {} |", cells.join(" | "));
    }
    md.push('\n');
}

/// The session tables' sequential scans over the run, by schema (every stack has a schema of its
/// own): a load by key that scans its table (a generic plan made while the table was nearly
/// empty, say: BENCHMARKS.md, "Controls") shows here as rows read by scans. The migration's own
/// scans of the empty table read none.
pub async fn table_scans(
    md: &mut String,
    conn: &sea_orm::DatabaseConnection,
) -> Result<(), crate::stacks::BoxError> {
    use sea_orm::{ConnectionTrait, DbBackend, Statement};
    let rows = conn
        .query_all_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT schemaname::text, seq_scan, seq_tup_read, COALESCE(idx_scan, 0) \
             FROM pg_stat_user_tables WHERE relname = 'session' ORDER BY schemaname",
        ))
        .await?;
    let _ = writeln!(
        md,
        "## Table scans\n\nEach stack's table over the run (`pg_stat_user_tables`; counters \
         flushed up to a second late): rows read by sequential scans should be 0.\n\n\
         | schema | sequential scans | rows they read | index scans |\n|---|---:|---:|---:|"
    );
    for row in rows {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} |",
            row.try_get_by_index::<String>(0)?,
            row.try_get_by_index::<i64>(1)?,
            row.try_get_by_index::<i64>(2)?,
            row.try_get_by_index::<i64>(3)?,
        );
    }
    md.push('\n');
    Ok(())
}
