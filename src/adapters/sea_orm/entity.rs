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

use sea_orm::entity::prelude::*;

/// One stored session.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(schema_name = "tower_sessions", table_name = "session")]
pub struct Model {
    /// The session id, in `Id`'s 22-character text form.
    #[sea_orm(primary_key, auto_increment = false, column_type = "Text")]
    pub id: String,
    /// The encoded record.
    pub data: Vec<u8>,
    /// When the session expires.
    pub expiry_date: TimeDateTimeWithTimeZone,
    /// The session's user, when the store keeps the per-user index (`with_user_key`).
    #[sea_orm(column_type = "Text", nullable)]
    pub user_key: Option<String>,
    /// The digest of the session's values, when the store avoids no-op writes
    /// (`with_touch_after`).
    #[sea_orm(nullable)]
    pub data_digest: Option<Vec<u8>>,
    /// When the session was created (the absolute lifetime counts from it).
    pub created_at: TimeDateTimeWithTimeZone,
    /// When the session was last written.
    pub updated_at: TimeDateTimeWithTimeZone,
    /// The values its user's device list shows, as a JSON object (`with_listed_values`).
    #[sea_orm(column_type = "Text", nullable)]
    pub listed_values: Option<String>,
}

/// The session table has no relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
