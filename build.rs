//! Sets `cfg(all_doc_features)` when the crate is built with every feature the guides' examples
//! use (`src/guide.rs`): as on docs.rs and in `cargo test --all-features`; and
//! `cfg(citus_cluster)` when `CITUS_URL` names a Citus cluster for the tests.

/// The features the guides' examples need, all at once.
const DOC_FEATURES: [&str; 12] = [
    "postgres",
    "sqlite",
    "mysql",
    "migration",
    "msgpack",
    "json",
    "bincode",
    "encryption",
    "cache",
    "testing",
    "tokio-postgres",
    "tower-sessions-014",
];

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rustc-check-cfg=cfg(all_doc_features)");
    let enabled = |feature: &str| {
        let name = feature.to_uppercase().replace('-', "_");
        std::env::var_os(format!("CARGO_FEATURE_{name}")).is_some()
    };
    if DOC_FEATURES.into_iter().all(enabled) {
        println!("cargo::rustc-cfg=all_doc_features");
    }
    // tests/citus_*.rs run on the Citus cluster that scripts/test starts (CITUS_URL); built
    // without one, they are a single test that says loudly it did not run. (A cfg, not a
    // check at run time: a test that returns early would pass without having run.)
    println!("cargo::rerun-if-env-changed=CITUS_URL");
    println!("cargo::rustc-check-cfg=cfg(citus_cluster)");
    if std::env::var_os("CITUS_URL").is_some() {
        println!("cargo::rustc-cfg=citus_cluster");
    }
}
