//! Encryption at rest (`codec::Encrypted`) through the store, on real databases: PostgreSQL
//! (`PostgresStore` and `LeanPostgresStore`), SQLite and MariaDB. The stored bytes are read and
//! rewritten by SQL, as someone holding the table would.
#![cfg(feature = "encryption")]

mod common;

use std::time::Duration as StdDuration;

use common::{mysql::MySqlFixture, sqlite::SqliteFixture, without_base, PgFixture};
use serde_json::json;
use sha2::{Digest, Sha256};
use time::{Duration, OffsetDateTime};
use tower_sessions_seaorm_store::{
    codec::{Codec, Encrypted, KeyRing, MessagePackCodec},
    repository::SessionRepository,
    sea_orm::{ConnectionTrait, DatabaseBackend, DatabaseConnection, Statement, Value},
    session_store, Id, Record, RepositoryStore, SessionStore,
};

const KEY_1: [u8; 32] = [0x11; 32];
const KEY_2: [u8; 32] = [0x22; 32];

/// Before the rotation: key 1 only.
fn ring_before() -> KeyRing {
    KeyRing::new(1, KEY_1)
}

/// During it: key 2 encrypts, key 1 still decrypts.
fn ring_during() -> KeyRing {
    KeyRing::new(2, KEY_2).with_old_key(1, KEY_1).unwrap()
}

/// After it: key 1 retired.
fn ring_after() -> KeyRing {
    KeyRing::new(2, KEY_2)
}

type EncryptedStore<R> = RepositoryStore<R, Encrypted<MessagePackCodec>>;

/// `store` (with whatever options it has) encrypting with `keys`: a replica restarted with
/// another key ring.
fn encrypted<R: SessionRepository>(
    store: &RepositoryStore<R, MessagePackCodec>,
    keys: KeyRing,
) -> EncryptedStore<R> {
    store
        .clone()
        .with_codec(Encrypted::new(MessagePackCodec, keys))
}

fn session(user: &str) -> Record {
    Record {
        id: Id::default(),
        data: [
            ("user_id".to_owned(), json!(user)),
            ("secret".to_owned(), json!("correct horse battery staple")),
        ]
        .into(),
        expiry_date: OffsetDateTime::now_utc().replace_nanosecond(0).unwrap() + Duration::hours(1),
    }
}

fn user() -> String {
    format!("user-{}", Id::default())
}

fn key_id_of(row: &[u8]) -> u32 {
    u32::from_be_bytes(row[1..5].try_into().unwrap())
}

fn hashed(id: Id) -> String {
    hex::encode(Sha256::digest(id.to_string()))
}

/// The session table, read and written by SQL.
struct Table {
    conn: DatabaseConnection,
    /// Quoted, and schema-qualified on PostgreSQL.
    name: String,
}

impl Table {
    /// `sql` with `?` placeholders, numbered for PostgreSQL.
    fn statement(&self, sql: &str, values: Vec<Value>) -> Statement {
        let backend = self.conn.get_database_backend();
        let sql = sql.replace("{table}", &self.name);
        let sql = if backend == DatabaseBackend::Postgres {
            let mut numbered = String::new();
            for (n, part) in sql.split('?').enumerate() {
                if n > 0 {
                    numbered.push_str(&format!("${n}"));
                }
                numbered.push_str(part);
            }
            numbered
        } else {
            sql
        };
        Statement::from_sql_and_values(backend, sql, values)
    }

    async fn bytes(&self, column: &str, key: &str) -> Option<Vec<u8>> {
        let sql = format!("SELECT {column} FROM {{table}} WHERE id = ?");
        let rows = self
            .conn
            .query_all_raw(self.statement(&sql, vec![key.into()]))
            .await
            .unwrap();
        let row = rows.first().expect("the row exists");
        row.try_get_by_index::<Option<Vec<u8>>>(0).unwrap()
    }

    async fn data(&self, key: &str) -> Vec<u8> {
        self.bytes("data", key).await.expect("data is never NULL")
    }

    async fn set_data(&self, key: &str, data: Vec<u8>) {
        self.set("data", key, data).await;
    }

    async fn set(&self, column: &str, key: &str, bytes: Vec<u8>) {
        let sql = format!("UPDATE {{table}} SET {column} = ? WHERE id = ?");
        let result = self
            .conn
            .execute_raw(self.statement(&sql, vec![bytes.into(), key.into()]))
            .await
            .unwrap();
        assert_eq!(result.rows_affected(), 1);
    }
}

async fn an_encrypted_session_round_trips_and_no_value_is_stored_in_clear<R>(
    store: &RepositoryStore<R, MessagePackCodec>,
    table: &Table,
) where
    R: SessionRepository + std::fmt::Debug,
{
    let store = encrypted(store, ring_before());
    let mut record = session("ada");
    store.create(&mut record).await.unwrap();

    assert_eq!(
        without_base(store.load(&record.id).await.unwrap()),
        Some(record.clone())
    );
    let stored = table.data(&record.id.to_string()).await;
    assert_eq!(stored[..5], [1, 0, 0, 0, 1], "version 1, key id 1");
    for clear in [&b"correct horse"[..], b"ada", b"user_id"] {
        assert!(!stored.windows(clear.len()).any(|w| w == clear));
    }

    let mut changed = record.clone();
    changed.data.insert("cart".to_owned(), json!([1, 2]));
    store.save(&changed).await.unwrap();
    assert_eq!(
        without_base(store.load(&record.id).await.unwrap()),
        Some(changed)
    );
}

async fn a_rows_data_copied_under_another_session_id_fails_to_load<R>(
    store: &RepositoryStore<R, MessagePackCodec>,
    table: &Table,
) where
    R: SessionRepository + std::fmt::Debug,
{
    let store = encrypted(store, ring_before());
    let (mut ada, mut eve) = (session("ada"), session("eve"));
    store.create(&mut ada).await.unwrap();
    store.create(&mut eve).await.unwrap();

    let adas_data = table.data(&ada.id.to_string()).await;
    table.set_data(&eve.id.to_string(), adas_data).await;

    let err = store.load(&eve.id).await.unwrap_err();
    assert!(
        matches!(&err, session_store::Error::Decode(reason) if reason.contains("does not authenticate")),
        "{err:?}"
    );
    assert_eq!(without_base(store.load(&ada.id).await.unwrap()), Some(ada));
}

async fn a_key_rotation_logs_nobody_out_and_re_encrypts_at_the_next_save<R>(
    store: &RepositoryStore<R, MessagePackCodec>,
    table: &Table,
) where
    R: SessionRepository + std::fmt::Debug,
{
    let before = encrypted(store, ring_before());
    let (mut saved, mut idle) = (session("ada"), session("bob"));
    before.create(&mut saved).await.unwrap();
    before.create(&mut idle).await.unwrap();
    let key = saved.id.to_string();
    assert_eq!(key_id_of(&table.data(&key).await), 1);

    let during = encrypted(store, ring_during());
    let loaded = without_base(during.load(&saved.id).await.unwrap());
    assert_eq!(loaded.as_ref(), Some(&saved), "nobody is logged out");
    during.save(&saved).await.unwrap();
    assert_eq!(
        key_id_of(&table.data(&key).await),
        2,
        "saved under the new key"
    );

    let after = encrypted(store, ring_after());
    assert_eq!(
        without_base(after.load(&saved.id).await.unwrap()),
        Some(saved)
    );
    // A session not saved during the rotation needs the retired key.
    let err = after.load(&idle.id).await.unwrap_err();
    assert!(
        matches!(&err, session_store::Error::Decode(reason) if reason.contains("key id 1")),
        "{err:?}"
    );
}

async fn a_rotation_re_encrypts_a_session_at_its_next_write_despite_write_avoidance_with_hashed_ids<
    R,
>(
    store: &RepositoryStore<R, MessagePackCodec>,
    table: &Table,
) where
    R: SessionRepository + std::fmt::Debug,
{
    let configured = store
        .clone()
        .with_hashed_ids()
        .with_touch_after(StdDuration::from_secs(3600))
        .with_user_key("user_id")
        .unwrap();
    let ada = user();
    let before = encrypted(&configured, ring_before());
    let mut record = session(&ada);
    before.create(&mut record).await.unwrap();
    let key = hashed(record.id);
    let written = table.data(&key).await;

    // Loaded and saved unchanged within the window: nothing is written, under either ring.
    let loaded = before.load(&record.id).await.unwrap().unwrap();
    before.save(&loaded).await.unwrap();
    let during = encrypted(&configured, ring_during());
    let loaded = during.load(&record.id).await.unwrap().unwrap();
    assert_eq!(without_base(Some(loaded.clone())), Some(record.clone()));
    during.save(&loaded).await.unwrap();
    assert_eq!(
        table.data(&key).await,
        written,
        "an unchanged save writes nothing"
    );

    // Its next write (here: the expiry moved past the window) encrypts under the new key.
    let mut later = loaded.clone();
    later.expiry_date += Duration::hours(2);
    during.save(&later).await.unwrap();
    let rewritten = table.data(&key).await;
    assert_eq!(key_id_of(&rewritten), 2, "re-encrypted at its next write");

    let after = encrypted(&configured, ring_after());
    let expected = Record {
        expiry_date: later.expiry_date,
        ..record.clone()
    };
    assert_eq!(
        without_base(after.load(&record.id).await.unwrap()),
        Some(expected.clone())
    );
    // The per-user index still lists it.
    let listed = after.user_sessions(&ada).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].handle, after.session_handle(record.id));
    assert_eq!(listed[0].expiry_date, expected.expiry_date);
}

/// Write avoidance, plain and encrypted: an unchanged save of a loaded session within the
/// window writes nothing (the stored bytes and expiry stay), a changed one writes.
async fn unchanged_saves_write_nothing_and_changed_ones_write<R, C>(
    store: &RepositoryStore<R, C>,
    table: &Table,
    what: &str,
) where
    R: SessionRepository + std::fmt::Debug,
    C: Codec + std::fmt::Debug,
    RepositoryStore<R, C>: SessionStore,
{
    let mut first = session("ada");
    store.create(&mut first).await.unwrap();
    let key = first.id.to_string();

    let written = table.data(&key).await;
    let mut touched = store.load(&first.id).await.unwrap().unwrap();
    touched.expiry_date += Duration::seconds(1);
    store.save(&touched).await.unwrap();
    let loaded = store.load(&first.id).await.unwrap().unwrap();
    assert_eq!(
        loaded.expiry_date, first.expiry_date,
        "{what}: an unchanged save was written"
    );
    assert_eq!(table.data(&key).await, written, "{what}");

    let mut changed = loaded.clone();
    changed.data.insert("cart".to_owned(), json!([1]));
    store.save(&changed).await.unwrap();
    let mut expected = first.clone();
    expected.data.insert("cart".to_owned(), json!([1]));
    assert_eq!(
        without_base(store.load(&first.id).await.unwrap()),
        Some(expected),
        "{what}"
    );
}

async fn write_avoidance_writes_only_changes<R>(
    store: &RepositoryStore<R, MessagePackCodec>,
    table: &Table,
) where
    R: SessionRepository + std::fmt::Debug,
{
    let avoiding = store.clone().with_touch_after(StdDuration::from_secs(3600));
    unchanged_saves_write_nothing_and_changed_ones_write(&avoiding, table, "plain").await;
    unchanged_saves_write_nothing_and_changed_ones_write(
        &encrypted(&avoiding, ring_before()),
        table,
        "encrypted",
    )
    .await;
}

/// Someone who can write the table can put back an older ciphertext of the same row (the
/// session as it was before a demotion): it authenticates and loads. Nothing inside the
/// database can tell; docs/codecs.md says so, and this test keeps that sentence true.
async fn an_older_ciphertext_of_the_same_row_put_back_loads<R>(
    store: &RepositoryStore<R, MessagePackCodec>,
    table: &Table,
) where
    R: SessionRepository + std::fmt::Debug,
{
    let store = encrypted(store, ring_before());
    let mut admin = session("ada");
    admin.data.insert("role".to_owned(), json!("admin"));
    store.create(&mut admin).await.unwrap();
    let key = admin.id.to_string();
    let before_the_demotion = table.data(&key).await;

    let mut demoted = admin.clone();
    demoted.data.insert("role".to_owned(), json!("user"));
    store.save(&demoted).await.unwrap();
    assert_eq!(
        without_base(store.load(&admin.id).await.unwrap()),
        Some(demoted)
    );

    table.set_data(&key, before_the_demotion).await;
    assert_eq!(
        without_base(store.load(&admin.id).await.unwrap()),
        Some(admin),
        "the row rolled back to its earlier ciphertext loads as it was then"
    );
}

/// One test per scenario and backend, each in a table or schema of its own.
macro_rules! on_every_backend {
    ($($name:ident),* $(,)?) => {
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let fixture = crate::PgFixture::new().await;
                    let table = crate::Table {
                        conn: fixture.conn.clone(),
                        name: fixture.table(),
                    };
                    crate::$name(&fixture.store, &table).await;
                    fixture.finish().await;
                }
            )*
        }

        #[cfg(feature = "tokio-postgres")]
        mod lean_postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let fixture = crate::common::lean::LeanFixture::new().await;
                    let table = crate::Table {
                        conn: fixture.conn.clone(),
                        name: format!("\"{}\".\"session\"", fixture.schema),
                    };
                    crate::$name(&fixture.store, &table).await;
                    fixture.finish().await;
                }
            )*
        }

        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let fixture = crate::SqliteFixture::file().await;
                    let table = crate::Table {
                        conn: fixture.conn.clone(),
                        name: "\"session\"".to_owned(),
                    };
                    crate::$name(&fixture.store, &table).await;
                    fixture.finish().await;
                }
            )*
        }

        mod mysql {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let fixture = crate::MySqlFixture::new().await;
                    let table = crate::Table {
                        conn: fixture.conn.clone(),
                        name: format!("`{}`", fixture.table),
                    };
                    crate::$name(&fixture.store, &table).await;
                    fixture.finish().await;
                }
            )*
        }
    };
}

on_every_backend!(
    an_encrypted_session_round_trips_and_no_value_is_stored_in_clear,
    a_rows_data_copied_under_another_session_id_fails_to_load,
    a_key_rotation_logs_nobody_out_and_re_encrypts_at_the_next_save,
    a_rotation_re_encrypts_a_session_at_its_next_write_despite_write_avoidance_with_hashed_ids,
    write_avoidance_writes_only_changes,
    an_older_ciphertext_of_the_same_row_put_back_loads,
);
