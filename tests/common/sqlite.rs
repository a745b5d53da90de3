//! SQLite fixtures: a store in a temporary file of its own, or in a named in-memory database of
//! its own, so that tests run in parallel.

use std::{path::PathBuf, time::Duration};

use tower_sessions_seaorm_store::{
    sea_orm::{ConnectOptions, Database, DatabaseConnection},
    SqliteStore,
};

use super::unique_name;

/// A connection to the SQLite database at `url`, with a pool of `connections`.
pub async fn connect_sqlite(url: &str, connections: u32) -> DatabaseConnection {
    let mut options = ConnectOptions::new(url.to_owned());
    options
        .max_connections(connections)
        .min_connections(1)
        .acquire_timeout(Duration::from_secs(10))
        .sqlx_logging(false);
    Database::connect(options)
        .await
        .unwrap_or_else(|err| panic!("open the SQLite database {url}: {err}"))
}

/// A fresh path in the system's temporary directory (the file does not exist yet).
pub fn temp_db_path() -> PathBuf {
    std::env::temp_dir().join(format!("{}.sqlite", unique_name("ts_test")))
}

/// `sqlite://` URL that creates the file at `path` if missing.
pub fn file_url(path: &std::path::Path) -> String {
    format!("sqlite://{}?mode=rwc", path.display())
}

/// A migrated store in a SQLite database of its own, and how to remove it afterwards.
pub struct SqliteFixture {
    pub store: SqliteStore,
    pub conn: DatabaseConnection,
    path: Option<PathBuf>,
    url: String,
}

impl SqliteFixture {
    /// A fresh, migrated store in a temporary file, on a pool of 8 connections.
    pub async fn file() -> Self {
        let path = temp_db_path();
        let url = file_url(&path);
        let conn = connect_sqlite(&url, 8).await;
        Self::on(conn, Some(path), url).await
    }

    /// A fresh, migrated store in memory.
    ///
    /// In SQLite, a plain `:memory:` database belongs to one connection, so a pool would give
    /// each connection its own empty database. A *named* in-memory database with a shared cache
    /// (`file:<name>?mode=memory&cache=shared`) is one database for every connection of the
    /// pool, as long as one stays open (the pool keeps one: min 1), so the suite's concurrent
    /// tests really run on 4 connections to the same data. (The name must carry the `file:`
    /// prefix: without it SQLite opens a private database per connection.)
    pub async fn memory() -> Self {
        let url = format!(
            "sqlite:file:{}?mode=memory&cache=shared",
            unique_name("ts_memory")
        );
        let conn = connect_sqlite(&url, 4).await;
        Self::on(conn, None, url).await
    }

    async fn on(conn: DatabaseConnection, path: Option<PathBuf>, url: String) -> Self {
        let store = SqliteStore::new(conn.clone());
        store
            .migrate()
            .await
            .expect("migrate a fresh SQLite database");
        Self {
            store,
            conn,
            path,
            url,
        }
    }

    /// Where the database is: another pool on the same sessions connects here.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Closes the pool and deletes the file (and its journal), if any.
    pub async fn finish(self) {
        let _ = self.conn.close().await;
        if let Some(path) = self.path {
            remove_db_files(&path);
        }
    }
}

/// Deletes a SQLite database file and the journal files beside it.
pub fn remove_db_files(path: &std::path::Path) {
    for suffix in ["", "-journal", "-wal", "-shm"] {
        let mut file = path.as_os_str().to_owned();
        file.push(suffix);
        let _ = std::fs::remove_file(file);
    }
}
