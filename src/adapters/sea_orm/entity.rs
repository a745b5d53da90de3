//! A SeaORM entity for the default session table, `"tower_sessions"."session"`, for applications
//! that want to query sessions with SeaORM (an admin page, a report). The store itself does not
//! need it: it sends its own statements.
//!
//! `data` holds the codec's bytes (MessagePack by default); decode them with the store's codec.
//! The entity describes the PostgreSQL table: on SQLite and MySQL the table has no schema and
//! `expiry_date` another type (per backend).
//!
//! ```no_run
//! use tower_sessions_seaorm_store::{entity, sea_orm::{EntityTrait, PaginatorTrait}};
//!
//! # async fn count(db: &tower_sessions_seaorm_store::sea_orm::DatabaseConnection) -> Result<(), tower_sessions_seaorm_store::sea_orm::DbErr> {
//! let sessions = entity::Entity::find().count(db).await?;
//! # Ok(()) }
//! ```

// The expanded form of `DeriveEntityModel`, with the iterators over columns, keys and
// relations written as arrays: the same entity, without three public iterator types no one
// names.
use sea_orm::{entity::prelude::*, Iterable};

/// The session table.
#[derive(Copy, Clone, Default, Debug, DeriveEntity)]
#[sea_orm(schema_name = "tower_sessions", table_name = "session")]
pub struct Entity;

/// One stored session.
#[derive(Clone, Debug, PartialEq, Eq, DeriveModel, DeriveActiveModel)]
pub struct Model {
    /// The session id, in `Id`'s 22-character text form.
    pub id: String,
    /// The encoded record.
    pub data: Vec<u8>,
    /// When the session expires.
    pub expiry_date: TimeDateTimeWithTimeZone,
    /// The session's user, when the store keeps the per-user index (`with_user_key`).
    pub user_key: Option<String>,
    /// Unused since store 0.3.0 (write avoidance's digest before it decided in process); kept
    /// so older stores keep working during a rolling deploy.
    pub data_digest: Option<Vec<u8>>,
    /// When the session was created (the absolute lifetime counts from it).
    pub created_at: TimeDateTimeWithTimeZone,
    /// When the session was last written.
    pub updated_at: TimeDateTimeWithTimeZone,
    /// The values its user's device list shows, as a JSON object (`with_listed_values`).
    pub listed_values: Option<String>,
    /// The row's version: 0 when created, one more at every save. Concurrent saves merge by
    /// it; a program that writes `data` itself should add one too.
    pub version: i64,
    /// Whether the session is long-lived ("remember me", `with_long_lived_sessions`): it then
    /// lives to that lifetime instead of the absolute lifetime.
    pub long_lived: bool,
}

/// The table's columns.
#[derive(Copy, Clone, Debug, DeriveColumn)]
pub enum Column {
    /// `id`.
    Id,
    /// `data`.
    Data,
    /// `expiry_date`.
    ExpiryDate,
    /// `user_key`.
    UserKey,
    /// `data_digest`.
    DataDigest,
    /// `created_at`.
    CreatedAt,
    /// `updated_at`.
    UpdatedAt,
    /// `listed_values`.
    ListedValues,
    /// `version`.
    Version,
    /// `long_lived`.
    LongLived,
}

impl Iterable for Column {
    type Iterator = std::array::IntoIter<Self, 10>;

    fn iter() -> Self::Iterator {
        [
            Self::Id,
            Self::Data,
            Self::ExpiryDate,
            Self::UserKey,
            Self::DataDigest,
            Self::CreatedAt,
            Self::UpdatedAt,
            Self::ListedValues,
            Self::Version,
            Self::LongLived,
        ]
        .into_iter()
    }
}

impl ColumnTrait for Column {
    type EntityName = Entity;

    fn def(&self) -> ColumnDef {
        use sea_orm::sea_query::ValueType;
        let bytes = <Vec<u8> as ValueType>::column_type;
        let instant = <TimeDateTimeWithTimeZone as ValueType>::column_type;
        match self {
            Self::Id => ColumnType::Text.def(),
            Self::Data => bytes().def(),
            Self::ExpiryDate | Self::CreatedAt | Self::UpdatedAt => instant().def(),
            Self::UserKey | Self::ListedValues => ColumnType::Text.def().nullable(),
            Self::DataDigest => bytes().def().nullable(),
            Self::Version => ColumnType::BigInteger.def(),
            Self::LongLived => ColumnType::Boolean.def(),
        }
    }
}

/// The primary key: `id`.
#[derive(Copy, Clone, Debug, DerivePrimaryKey)]
pub enum PrimaryKey {
    /// `id`.
    Id,
}

impl Iterable for PrimaryKey {
    type Iterator = std::array::IntoIter<Self, 1>;

    fn iter() -> Self::Iterator {
        [Self::Id].into_iter()
    }
}

impl PrimaryKeyTrait for PrimaryKey {
    type ValueType = String;

    fn auto_increment() -> bool {
        false
    }
}

/// The session table has no relations.
#[derive(Copy, Clone, Debug)]
pub enum Relation {}

impl Iterable for Relation {
    type Iterator = std::array::IntoIter<Self, 0>;

    fn iter() -> Self::Iterator {
        [].into_iter()
    }
}

impl RelationTrait for Relation {
    fn def(&self) -> RelationDef {
        match *self {}
    }
}

impl ActiveModelBehavior for ActiveModel {}
