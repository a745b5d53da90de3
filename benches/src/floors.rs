//! The floors: one hand-written statement per operation, MessagePack-encoded, on the same table
//! shape. The same SQL text the stores send (the counts part checks it, see
//! [`crate::counts`]), with the values a hand-written client would bind, so the only difference
//! left is the store itself: its checks, its merge and its layers, not what its statements ask
//! of the server.

use async_trait::async_trait;
use deadpool_postgres::Pool;
use sea_orm::sqlx::{self, PgPool};
use time::OffsetDateTime;

use crate::stacks::{BoxError, Sample, Stack};

pub struct Sql {
    insert_if_absent: String,
    update_if_version: String,
    find_unexpired: String,
    delete_by_id: String,
}

impl Sql {
    /// The statements `PostgresStore` and `LeanPostgresStore` send, in `schema`, for a session
    /// with no user, no listed values and no lifetime limits (the bench's sessions).
    pub fn new(schema: &str) -> Self {
        let t = format!(r#""{schema}"."session""#);
        Sql {
            // A create inserts the row with its instants, never overwriting.
            insert_if_absent: format!(
                r#"INSERT INTO {t} ("id", "data", "expiry_date", "user_key", "created_at", "updated_at", "listed_values", "long_lived") VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT ("id") DO NOTHING"#
            ),
            // A save updates the version it loaded and never inserts, as the stores' saves do.
            update_if_version: format!(
                r#"UPDATE {t} SET "data" = $2, "expiry_date" = $3, "user_key" = $4, "updated_at" = $5, "listed_values" = $6, "long_lived" = $7, "version" = "version" + 1 WHERE "id" = $1 AND "version" = $8"#
            ),
            find_unexpired: format!(
                r#"SELECT "data", "version", "user_key" FROM {t} WHERE "id" = $1 AND "expiry_date" > $2"#
            ),
            delete_by_id: format!(r#"DELETE FROM {t} WHERE "id" = $1"#),
        }
    }
}

/// The version a created session has, which the bench's one save per session expects.
const CREATED_VERSION: i64 = 0;

/// A floor's save must have written its session, as the stores' saves check theirs did: a
/// save of the wrong version would update nothing and cost the floor less than a save.
fn one_row_updated(rows: u64) -> Result<(), BoxError> {
    if rows == 1 {
        Ok(())
    } else {
        Err(format!("the floor's save updated {rows} rows, not its session's one").into())
    }
}

fn encode(record: &store::Record) -> Result<Vec<u8>, BoxError> {
    Ok(rmp_serde::to_vec(record)?)
}

/// tokio-postgres through deadpool, statements prepared once per connection.
pub struct LeanFloor {
    pub pool: Pool,
    pub sql: Sql,
}

#[async_trait]
impl Stack for LeanFloor {
    async fn create(&self, sample: &Sample) -> Result<(), BoxError> {
        let data = encode(&sample.record)?;
        let id = sample.record.id.to_string();
        let now = OffsetDateTime::now_utc();
        let client = self.pool.get().await?;
        let stmt = client.prepare_cached(&self.sql.insert_if_absent).await?;
        let no_text: Option<&str> = None;
        client
            .execute(
                &stmt,
                &[
                    &id,
                    &data,
                    &sample.record.expiry_date,
                    &no_text,
                    &now,
                    &now,
                    &no_text,
                    &false,
                ],
            )
            .await?;
        Ok(())
    }
    async fn save(&self, sample: &Sample) -> Result<(), BoxError> {
        let data = encode(&sample.changed)?;
        let id = sample.record.id.to_string();
        let now = OffsetDateTime::now_utc();
        let client = self.pool.get().await?;
        let stmt = client.prepare_cached(&self.sql.update_if_version).await?;
        let no_text: Option<&str> = None;
        let updated = client
            .execute(
                &stmt,
                &[
                    &id,
                    &data,
                    &sample.record.expiry_date,
                    &no_text,
                    &now,
                    &no_text,
                    &false,
                    &CREATED_VERSION,
                ],
            )
            .await?;
        one_row_updated(updated)
    }
    async fn load(&self, sample: &Sample) -> Result<bool, BoxError> {
        let id = sample.record.id.to_string();
        let now = OffsetDateTime::now_utc();
        let client = self.pool.get().await?;
        let stmt = client.prepare_cached(&self.sql.find_unexpired).await?;
        let Some(row) = client.query_opt(&stmt, &[&id, &now]).await? else {
            return Ok(false);
        };
        let data: Vec<u8> = row.try_get(0)?;
        let _version: i64 = row.try_get(1)?;
        let _user: Option<String> = row.try_get(2)?;
        let record: store::Record = rmp_serde::from_slice(&data)?;
        Ok(record.expiry_date > now)
    }
    async fn delete(&self, sample: &Sample) -> Result<(), BoxError> {
        let id = sample.record.id.to_string();
        let client = self.pool.get().await?;
        let stmt = client.prepare_cached(&self.sql.delete_by_id).await?;
        client.execute(&stmt, &[&id]).await?;
        Ok(())
    }
}

/// sqlx 0.9 on SeaORM's own pool (`get_postgres_connection_pool`), sqlx's statement cache.
pub struct SqlxFloor {
    pub pool: PgPool,
    pub sql: Sql,
}

#[async_trait]
impl Stack for SqlxFloor {
    async fn create(&self, sample: &Sample) -> Result<(), BoxError> {
        let data = encode(&sample.record)?;
        let now = OffsetDateTime::now_utc();
        sqlx::query(sqlx::AssertSqlSafe(self.sql.insert_if_absent.as_str()))
            .bind(sample.record.id.to_string())
            .bind(data)
            .bind(sample.record.expiry_date)
            .bind(None::<String>)
            .bind(now)
            .bind(now)
            .bind(None::<String>)
            .bind(false)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
    async fn save(&self, sample: &Sample) -> Result<(), BoxError> {
        let data = encode(&sample.changed)?;
        let now = OffsetDateTime::now_utc();
        let updated = sqlx::query(sqlx::AssertSqlSafe(self.sql.update_if_version.as_str()))
            .bind(sample.record.id.to_string())
            .bind(data)
            .bind(sample.record.expiry_date)
            .bind(None::<String>)
            .bind(now)
            .bind(None::<String>)
            .bind(false)
            .bind(CREATED_VERSION)
            .execute(&self.pool)
            .await?;
        one_row_updated(updated.rows_affected())
    }
    async fn load(&self, sample: &Sample) -> Result<bool, BoxError> {
        let now = OffsetDateTime::now_utc();
        let row: Option<(Vec<u8>, i64, Option<String>)> =
            sqlx::query_as(sqlx::AssertSqlSafe(self.sql.find_unexpired.as_str()))
                .bind(sample.record.id.to_string())
                .bind(now)
                .fetch_optional(&self.pool)
                .await?;
        let Some((data, _version, _user)) = row else {
            return Ok(false);
        };
        let record: store::Record = rmp_serde::from_slice(&data)?;
        Ok(record.expiry_date > now)
    }
    async fn delete(&self, sample: &Sample) -> Result<(), BoxError> {
        sqlx::query(sqlx::AssertSqlSafe(self.sql.delete_by_id.as_str()))
            .bind(sample.record.id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
