//! The in-memory repository against the same specifications as the SQL backends: the store's
//! behavioural suite, and the repository contract operation by operation.

mod common;

behaviour_suite!(common::memory::MemoryFixture::new());
features_suite!(crate::common::memory::MemoryFixture::new());

mod contract {
    crate::repository_contract!(crate::common::memory::MemoryFixture::new());
}
