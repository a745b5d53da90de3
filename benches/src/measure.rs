//! The interleaved rounds: every stack runs every operation once per round, in an order that
//! rotates from round to round, so a burst of load on the machine hits all stacks alike.

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use store::Record;

use crate::stacks::{BoxError, Named, Op, Sample, Stack};

/// µs per operation of each (stack, operation, concurrency), one value per round: wall time,
/// and the CPU time of this process (the client side: store, driver, pool, runtime).
#[derive(Default)]
pub struct Timings {
    pub rounds: HashMap<(usize, Op, usize), Vec<f64>>,
    pub cpu: HashMap<(usize, Op, usize), Vec<f64>>,
}

fn median_of(map: &HashMap<(usize, Op, usize), Vec<f64>>, key: (usize, Op, usize)) -> Option<f64> {
    Some(median(map.get(&key)?.iter().copied()))
}

/// The median of `values` (the upper one of an even count; NaN of none): the bench's one
/// summary of rounds.
pub fn median(values: impl IntoIterator<Item = f64>) -> f64 {
    let mut values: Vec<f64> = values.into_iter().collect();
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

impl Timings {
    /// The median wall µs/op over the rounds.
    pub fn median(&self, stack: usize, op: Op, concurrency: usize) -> Option<f64> {
        median_of(&self.rounds, (stack, op, concurrency))
    }

    /// `baseline ÷ subject` per round, each round's two measured side by side (so a slow
    /// stretch of the machine weighs on both): the median and the interquartile range of those
    /// ratios. Steadier than the ratio of the medians, which pairs figures of different rounds.
    pub fn paired_ratio(
        &self,
        subject: usize,
        baseline: usize,
        op: Op,
        concurrency: usize,
    ) -> Option<(f64, f64, f64)> {
        let s = self.rounds.get(&(subject, op, concurrency))?;
        let b = self.rounds.get(&(baseline, op, concurrency))?;
        let mut ratios: Vec<f64> = s.iter().zip(b).map(|(s, b)| b / s).collect();
        if ratios.is_empty() {
            return None;
        }
        ratios.sort_by(f64::total_cmp);
        let at = |q: usize| ratios[(ratios.len() - 1) * q / 4];
        Some((at(2), at(1), at(3)))
    }

    /// The median client CPU µs/op over the rounds.
    pub fn cpu_median(&self, stack: usize, op: Op, concurrency: usize) -> Option<f64> {
        median_of(&self.cpu, (stack, op, concurrency))
    }
}

/// CPU time this process has used (all threads).
fn process_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec it is given and nothing else.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Runs `op` on every sample, split over `concurrency` tasks, and returns the wall time.
pub async fn phase(
    stack: &Arc<dyn Stack>,
    op: Op,
    samples: &Arc<Vec<Sample>>,
    concurrency: usize,
) -> Result<Duration, BoxError> {
    let started = Instant::now();
    split(stack, Step::Op(op), samples, concurrency).await?;
    Ok(started.elapsed())
}

/// [`Stack::prepare_save`] of every sample, untimed: a request loads before it saves.
pub async fn prepare_saves(
    stack: &Arc<dyn Stack>,
    samples: &Arc<Vec<Sample>>,
    concurrency: usize,
) -> Result<(), BoxError> {
    split(stack, Step::PrepareSave, samples, concurrency).await
}

/// What [`split`] runs on each sample.
#[derive(Clone, Copy)]
enum Step {
    Op(Op),
    PrepareSave,
}

/// Runs `step` on every sample, split over `concurrency` tasks.
async fn split(
    stack: &Arc<dyn Stack>,
    step: Step,
    samples: &Arc<Vec<Sample>>,
    concurrency: usize,
) -> Result<(), BoxError> {
    let tasks: Vec<_> = (0..concurrency)
        .map(|task| {
            let stack = Arc::clone(stack);
            let samples = Arc::clone(samples);
            tokio::spawn(async move {
                for sample in samples.iter().skip(task).step_by(concurrency) {
                    match step {
                        Step::Op(Op::Create) => stack.create(sample).await?,
                        Step::Op(Op::Save) => stack.save(sample).await?,
                        Step::Op(Op::Load) => {
                            if !stack.load(sample).await? {
                                return Err::<(), BoxError>("a stored session did not load".into());
                            }
                        }
                        Step::Op(Op::Delete) => stack.delete(sample).await?,
                        Step::PrepareSave => stack.prepare_save(sample).await?,
                    }
                }
                Ok(())
            })
        })
        .collect();
    for task in tasks {
        task.await??;
    }
    Ok(())
}

/// `rounds` rounds of create, save, load and delete of `ops` sessions on every stack at each
/// concurrency.
pub async fn run(
    stacks: &[Named],
    template: &Record,
    concurrencies: &[usize],
    rounds: usize,
    ops: usize,
) -> Result<Timings, BoxError> {
    let mut timings = Timings::default();
    // One untimed round to open every pool connection and prepare every statement.
    for &concurrency in concurrencies {
        one_round(stacks, template, concurrency, 0, ops.min(200), None).await?;
    }
    for round in 0..rounds {
        for &concurrency in concurrencies {
            one_round(
                stacks,
                template,
                concurrency,
                round,
                ops,
                Some(&mut timings),
            )
            .await?;
        }
        eprintln!("bench: round {}/{rounds} done", round + 1);
    }
    Ok(timings)
}

async fn one_round(
    stacks: &[Named],
    template: &Record,
    concurrency: usize,
    round: usize,
    ops: usize,
    mut timings: Option<&mut Timings>,
) -> Result<(), BoxError> {
    let samples: Vec<Arc<Vec<Sample>>> = stacks
        .iter()
        .map(|_| Arc::new((0..ops).map(|_| Sample::new(template)).collect()))
        .collect();
    let order: Vec<usize> = (0..stacks.len())
        .map(|i| (i + round) % stacks.len())
        .collect();
    for op in Op::ALL {
        for &i in &order {
            let cpu_before = process_cpu();
            let elapsed = phase(&stacks[i].stack, op, &samples[i], concurrency)
                .await
                .map_err(|err| format!("{} {}: {err}", stacks[i].name, op.name()))?;
            if let Some(timings) = timings.as_deref_mut() {
                let per_op = |d: Duration| d.as_secs_f64() * 1e6 / ops as f64;
                let key = (i, op, concurrency);
                timings.rounds.entry(key).or_default().push(per_op(elapsed));
                let cpu = process_cpu().saturating_sub(cpu_before);
                timings.cpu.entry(key).or_default().push(per_op(cpu));
            }
        }
        if op == Op::Create {
            for &i in &order {
                prepare_saves(&stacks[i].stack, &samples[i], concurrency).await?;
            }
        }
    }
    Ok(())
}

/// Creates `ops` sessions (untimed), loads each once (timed), deletes them; µs per load.
pub async fn load_only(
    stack: &Arc<dyn Stack>,
    template: &Record,
    concurrency: usize,
    ops: usize,
) -> Result<f64, BoxError> {
    let samples = Arc::new((0..ops).map(|_| Sample::new(template)).collect());
    phase(stack, Op::Create, &samples, concurrency).await?;
    let elapsed = phase(stack, Op::Load, &samples, concurrency).await?;
    phase(stack, Op::Delete, &samples, concurrency).await?;
    Ok(elapsed.as_secs_f64() * 1e6 / ops as f64)
}
