//! The stacks under test, each behind one small trait so the runner treats them alike.
//!
//! A stack runs the four store operations on the same session record. The floors are one
//! hand-written statement per operation plus MessagePack encoding: what a store cannot beat on
//! that driver. The stores are driven through their own `SessionStore` trait (tower-sessions-core
//! 0.15 for this crate, 0.14 for the peers).

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use store::{Id, Record, SessionStore};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The operations measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    Create,
    Save,
    Load,
    Delete,
}

impl Op {
    pub const ALL: [Op; 4] = [Op::Create, Op::Save, Op::Load, Op::Delete];

    pub fn name(self) -> &'static str {
        match self {
            Op::Create => "create",
            Op::Save => "save",
            Op::Load => "load",
            Op::Delete => "delete",
        }
    }
}

/// One session of the workload, in the record type of each tower-sessions-core.
pub struct Sample {
    pub record: Record,
    pub record014: core014::session::Record,
    /// The record as a request that changed one value (its CSRF token) saves it: what every
    /// stack's save writes. tower-sessions saves only a session its request modified, so a
    /// save that writes the stored bytes again would flatter every stack (PostgreSQL then
    /// logs almost nothing of the row).
    pub changed: Record,
    pub changed014: core014::session::Record,
    /// The record as this crate's stores loaded it (with the base a save merges from), with
    /// [`Sample::changed`]'s change made, set by [`Stack::prepare_save`]: what a request saves.
    pub loaded: std::sync::OnceLock<Record>,
    /// A copy of [`Sample::record`] (and of [`Sample::record014`]) made with the sample, for
    /// the one `create` that takes it: `create` takes the record `&mut`, and a request hands
    /// it the record it holds, so the copy is not the store's to pay for in the timed window.
    /// The create hands it back ([`Sample::created`]): a request keeps its record after the
    /// create, so neither is its drop the store's (the floors only borrow the sample's).
    for_create: Mutex<Option<Record>>,
    for_create014: Mutex<Option<core014::session::Record>>,
}

/// The value a request changes before its save, and its changed value.
const CHANGED_KEY: &str = "csrf";

impl Sample {
    /// A fresh session with the bench's record and a fresh id.
    pub fn new(template: &Record) -> Self {
        let mut record = template.clone();
        record.id = Id::default();
        let mut changed = record.clone();
        changed.data.insert(
            CHANGED_KEY.to_owned(),
            serde_json::json!(Id::default().to_string()),
        );
        Sample {
            record014: to_014(&record),
            changed014: to_014(&changed),
            for_create: Mutex::new(Some(record.clone())),
            for_create014: Mutex::new(Some(to_014(&record))),
            record,
            changed,
            loaded: std::sync::OnceLock::new(),
        }
    }

    /// The record to create: the copy made with the sample, or (created again) a new one.
    fn record_to_create(&self) -> Record {
        take_or_clone(&self.for_create, &self.record)
    }

    fn record014_to_create(&self) -> core014::session::Record {
        take_or_clone(&self.for_create014, &self.record014)
    }

    /// The record a create was handed, back with the sample, dropped with it (untimed).
    fn created(&self, record: Record) {
        put_back(&self.for_create, record);
    }

    fn created014(&self, record: core014::session::Record) {
        put_back(&self.for_create014, record);
    }
}

/// What `spare` holds, taken, or a clone of `original` once it has been.
fn take_or_clone<T: Clone>(spare: &Mutex<Option<T>>, original: &T) -> T {
    let taken = spare.lock().ok().and_then(|mut spare| spare.take());
    taken.unwrap_or_else(|| original.clone())
}

/// `value` into `spare`, to be dropped with it (or taken by another create).
fn put_back<T>(spare: &Mutex<Option<T>>, value: T) {
    if let Ok(mut spare) = spare.lock() {
        *spare = Some(value);
    }
}

pub fn to_014(record: &Record) -> core014::session::Record {
    core014::session::Record {
        id: core014::session::Id(record.id.0),
        data: record.data.clone(),
        expiry_date: record.expiry_date,
    }
}

/// A stack under test. `create` stores the sample under its id (or a fresh one); the others
/// act on a sample created before.
#[async_trait]
pub trait Stack: Send + Sync {
    async fn create(&self, sample: &Sample) -> Result<(), BoxError>;
    /// Untimed, between create and save: what a request does before it saves. This crate's
    /// stores load the session (a save of a loaded session merges per key); the others need
    /// nothing.
    async fn prepare_save(&self, _sample: &Sample) -> Result<(), BoxError> {
        Ok(())
    }
    async fn save(&self, sample: &Sample) -> Result<(), BoxError>;
    async fn load(&self, sample: &Sample) -> Result<bool, BoxError>;
    async fn delete(&self, sample: &Sample) -> Result<(), BoxError>;
}

/// A stack under test with its name in the report.
#[derive(Clone)]
pub struct Named {
    pub name: String,
    /// Which family the chart and the ratios group it with.
    pub kind: Kind,
    /// Whether the pool uses the README's recommended options (or has nothing to tune).
    pub tuned: bool,
    pub stack: Arc<dyn Stack>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    LeanFloor,
    LeanStore,
    SqlxFloor,
    SeaOrmStore,
    /// A second copy of a floor (its own pool and table), measured against the first: the
    /// control that tells what a ratio of two identical stacks reads on this machine.
    LeanFloorTwin,
    SqlxFloorTwin,
    /// `LeanPostgresStore` with its operation time-out off (`with_operation_timeout(None)`):
    /// what the time-out costs.
    LeanStoreUntimed,
    SqlxStorePeer,
    SeaOrm01Peer,
}

/// Any tower-sessions 0.15 store: this crate's.
pub struct Store15<S>(pub S);

#[async_trait]
impl<S: SessionStore> Stack for Store15<S> {
    async fn create(&self, sample: &Sample) -> Result<(), BoxError> {
        let mut record = sample.record_to_create();
        self.0.create(&mut record).await?;
        sample.created(record);
        Ok(())
    }
    async fn prepare_save(&self, sample: &Sample) -> Result<(), BoxError> {
        let loaded = self.0.load(&sample.record.id).await?;
        let mut loaded = loaded.ok_or("a created session did not load")?;
        loaded.data.insert(
            CHANGED_KEY.to_owned(),
            sample.changed.data[CHANGED_KEY].clone(),
        );
        let _ = sample.loaded.set(loaded);
        Ok(())
    }
    async fn save(&self, sample: &Sample) -> Result<(), BoxError> {
        let record = sample.loaded.get().unwrap_or(&sample.changed);
        Ok(self.0.save(record).await?)
    }
    async fn load(&self, sample: &Sample) -> Result<bool, BoxError> {
        Ok(self.0.load(&sample.record.id).await?.is_some())
    }
    async fn delete(&self, sample: &Sample) -> Result<(), BoxError> {
        Ok(self.0.delete(&sample.record.id).await?)
    }
}

/// Any tower-sessions 0.14 store: the peers.
pub struct Store14<S>(pub S);

#[async_trait]
impl<S: core014::SessionStore> Stack for Store14<S> {
    async fn create(&self, sample: &Sample) -> Result<(), BoxError> {
        let mut record = sample.record014_to_create();
        self.0.create(&mut record).await?;
        sample.created014(record);
        Ok(())
    }
    async fn save(&self, sample: &Sample) -> Result<(), BoxError> {
        Ok(self.0.save(&sample.changed014).await?)
    }
    async fn load(&self, sample: &Sample) -> Result<bool, BoxError> {
        Ok(self.0.load(&sample.record014.id).await?.is_some())
    }
    async fn delete(&self, sample: &Sample) -> Result<(), BoxError> {
        Ok(self.0.delete(&sample.record014.id).await?)
    }
}
