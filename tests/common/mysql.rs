//! MySQL/MariaDB fixtures: a store in a table of its own in the `MYSQL_URL` database, so that
//! tests run in parallel.

use std::time::Duration;

use tower_sessions_seaorm_store::{
    migration::HISTORY_TABLE as MIGRATION_HISTORY_TABLE,
    sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection},
    MySqlStore,
};

use super::unique_name;

/// `MYSQL_URL`, or the local default.
pub fn mysql_url() -> String {
    std::env::var("MYSQL_URL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".to_owned())
}

/// A connection to the test MySQL/MariaDB with a pool of `connections`, or a panic that says
/// how to start one.
pub async fn connect_mysql_with(url: &str, connections: u32) -> DatabaseConnection {
    let mut options = ConnectOptions::new(url.to_owned());
    options
        .max_connections(connections)
        .min_connections(connections.min(1))
        .acquire_timeout(Duration::from_secs(10))
        .sqlx_logging(false);
    match Database::connect(options).await {
        Ok(conn) => conn,
        Err(err) => panic!(
            "these tests need MySQL or MariaDB at {url} (set MYSQL_URL to change it): {err}\n\
             start one with `scripts/test` (it starts or installs MariaDB, then runs the suite), \
             or `start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd -- --user=mysql`"
        ),
    }
}

/// A connection to the test MySQL/MariaDB (a pool of 16).
pub async fn connect_mysql(url: &str) -> DatabaseConnection {
    connect_mysql_with(url, 16).await
}

/// A migrated store in a table of its own, and how to drop it afterwards.
pub struct MySqlFixture {
    pub store: MySqlStore,
    pub conn: DatabaseConnection,
    pub table: String,
}

impl MySqlFixture {
    /// A fresh, migrated store at `MYSQL_URL`.
    pub async fn new() -> Self {
        Self::on(connect_mysql(&mysql_url()).await).await
    }

    /// A fresh, migrated store on `conn`.
    pub async fn on(conn: DatabaseConnection) -> Self {
        let table = unique_name("ts_test");
        let store = MySqlStore::new(conn.clone())
            .with_table_name(&table)
            .expect("a valid table name");
        store.migrate().await.expect("migrate a fresh table");
        Self { store, conn, table }
    }

    /// Drops the test's table and its history row.
    pub async fn finish(self) {
        drop_table(&self.conn, &self.table).await;
        let _ = self.conn.close().await;
    }
}

/// Drops `table` and forgets its migrations.
pub async fn drop_table(conn: &DatabaseConnection, table: &str) {
    conn.execute_unprepared(&format!("DROP TABLE IF EXISTS `{table}`"))
        .await
        .expect("drop the test table");
    conn.execute_unprepared(&format!(
        "DELETE FROM `{MIGRATION_HISTORY_TABLE}` WHERE version LIKE '{table}/%'"
    ))
    .await
    .expect("forget the test table's migrations");
}
