//! What a save that another save overtook costs (#26): the uncontended save of a loaded session
//! (one `UPDATE … AND "version" = …`) beside the overtaken one (that `UPDATE` finds no row, then
//! one `SELECT` and one more `UPDATE`), on `PostgresStore` and `LeanPostgresStore`, rounds
//! interleaved.

use std::time::Instant;

use serde_json::json;
use store::{LeanPostgresStore, PostgresStore, Record, SessionStore};

use crate::{measure::median, setup, stacks::BoxError};

/// Median µs per save of each kind, per store: (name, uncontended, overtaken).
pub type Costs = Vec<(&'static str, f64, f64)>;

/// `rounds` rounds of `ops` sessions per store: each loaded twice, saved once from the first
/// load (timed: uncontended), then once from the second with a change (timed: overtaken).
pub async fn run(
    base: &str,
    template: &Record,
    rounds: usize,
    ops: usize,
) -> Result<Costs, BoxError> {
    let bench = setup::url(base, setup::BENCH_DB);
    let admin = setup::seaorm(&bench, true).await?;
    setup::migrated(&admin, "merge_seaorm").await?;
    setup::migrated(&admin, "merge_lean").await?;
    let seaorm =
        PostgresStore::new(setup::seaorm(&bench, true).await?).with_schema_name("merge_seaorm")?;
    let lean = LeanPostgresStore::new(setup::lean_pool(&bench)?).with_schema_name("merge_lean")?;
    let mut samples: [(&'static str, Vec<f64>, Vec<f64>); 2] = [
        ("PostgresStore (SeaORM)", Vec::new(), Vec::new()),
        ("LeanPostgresStore", Vec::new(), Vec::new()),
    ];
    // One untimed round first, to open the connections and prepare the statements.
    for round in 0..=rounds {
        for turn in 0..2 {
            let which = (turn + round) % 2;
            let (uncontended, overtaken) = match which {
                0 => one_round(&seaorm, template, ops).await?,
                _ => one_round(&lean, template, ops).await?,
            };
            if round > 0 {
                samples[which].1.push(uncontended);
                samples[which].2.push(overtaken);
            }
        }
    }
    Ok(samples
        .into_iter()
        .map(|(name, uncontended, overtaken)| (name, median(uncontended), median(overtaken)))
        .collect())
}

async fn one_round<S: SessionStore>(
    store: &S,
    template: &Record,
    ops: usize,
) -> Result<(f64, f64), BoxError> {
    let mut pairs = Vec::with_capacity(ops);
    for _ in 0..ops {
        let mut record = template.clone();
        record.id = store::Id::default();
        store.create(&mut record).await?;
        let first = store
            .load(&record.id)
            .await?
            .ok_or("a created session did not load")?;
        let mut second = store
            .load(&record.id)
            .await?
            .ok_or("a created session did not load")?;
        second.data.insert("second".to_owned(), json!(true));
        pairs.push((first, second));
    }
    let started = Instant::now();
    for (first, _) in &pairs {
        store.save(first).await?;
    }
    let uncontended = started.elapsed();
    let started = Instant::now();
    for (_, second) in &pairs {
        store.save(second).await?;
    }
    let overtaken = started.elapsed();
    for (first, _) in &pairs {
        let merged = store
            .load(&first.id)
            .await?
            .ok_or("a saved session did not load")?;
        if merged.data.get("second") != Some(&json!(true)) {
            return Err("an overtaken save was lost".into());
        }
        store.delete(&first.id).await?;
    }
    let per_op = |d: std::time::Duration| d.as_secs_f64() * 1e6 / ops as f64;
    Ok((per_op(uncontended), per_op(overtaken)))
}

/// The table of [`run`]'s costs.
pub fn report(md: &mut String, costs: &Costs, rounds: usize, ops: usize) {
    use std::fmt::Write;
    let _ = writeln!(
        md,
        "## A save overtaken by another save\n\n1 client; {rounds} rounds of {ops} sessions per \
         store; median µs per save. Uncontended: a loaded session saved (one `UPDATE … AND \
         \"version\" = …`). Overtaken: the same session's second load saved after the first \
         (the `UPDATE` finds no row, then one `SELECT` and one `UPDATE`).\n\n| store | \
         uncontended | overtaken | extra |\n|---|---|---|---|"
    );
    for (name, uncontended, overtaken) in costs {
        let _ = writeln!(
            md,
            "| {name} | {uncontended:.0} µs | {overtaken:.0} µs | +{:.0} µs (×{:.2}) |",
            overtaken - uncontended,
            overtaken / uncontended
        );
    }
    let _ = writeln!(md);
}
