//! The behavioural suite on MySQL/MariaDB (`MYSQL_URL`, default
//! `mysql://root@127.0.0.1:3306/test`).

mod common;

behaviour_suite!(common::mysql::MySqlFixture::new());
