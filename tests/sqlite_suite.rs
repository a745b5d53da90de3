//! The behavioural suite (and the features suite: per-user index, write avoidance, hashed ids) on SQLite: in a temporary file, and in a named shared-cache in-memory
//! database (see `SqliteFixture::memory` for why not plain `sqlite::memory:`).

mod common;

mod file {
    crate::behaviour_suite!(crate::common::sqlite::SqliteFixture::file());
    crate::features_suite!(crate::common::sqlite::SqliteFixture::file());

    mod contract {
        crate::repository_contract!(crate::common::sqlite::SqliteFixture::file());
    }
}

mod memory {
    crate::behaviour_suite!(crate::common::sqlite::SqliteFixture::memory());
}
