//! The behavioural suite (and the features suite: per-user index, write avoidance, hashed ids) on MySQL/MariaDB (`MYSQL_URL`, default
//! `mysql://root@127.0.0.1:3306/test`).

mod common;

behaviour_suite!(common::mysql::MySqlFixture::new());
features_suite!(crate::common::mysql::MySqlFixture::new());

mod contract {
    crate::repository_contract!(crate::common::mysql::MySqlFixture::new());
}
