// The guides of `docs/`, one page each, so that docs.rs shows them and their Rust examples are
// doctests: compiled by `cargo test --all-features` (`scripts/test`, CI), and run unless marked
// `no_run` (those need a database). `.ci/check-doc-links` checks every link of these pages and
// of the crate root in the generated HTML.
//
// Each guide is included as it is on GitHub. Its links to other files are reference links,
// defined at its end with relative paths, for GitHub; `guide/guide-links.md` defines the same
// labels first, for rustdoc (the first definition of a label wins), as pages of this module or
// as absolute URLs in the repository. `guide/root-links.md` does the same for README.md, the
// crate root.
//
// The examples use every feature of the crate, so the guides are included when the crate is
// documented with all of them (`cfg(all_doc_features)`, set by `build.rs`), as on docs.rs;
// otherwise each page says where to read it.
#![cfg_attr(
    all_doc_features,
    doc = include_str!("guide/guide-links.md"),
    doc = include_str!("../docs/README.md")
)]
#![cfg_attr(
    not(all_doc_features),
    doc = "The guides (`docs/`), shown when the crate is documented with all its features \
           (`cargo doc --all-features`, as on docs.rs)."
)]

/// One page per guide: `guide!(name, "file.md")` is `pub mod name {}` documented by
/// `docs/file.md`.
macro_rules! guide {
    ($(#[$meta:meta])* $name:ident, $file:literal) => {
        $(#[$meta])*
        #[cfg_attr(
            all_doc_features,
            doc = include_str!("guide/guide-links.md"),
            doc = include_str!(concat!("../docs/", $file))
        )]
        #[cfg_attr(
            not(all_doc_features),
            doc = concat!(
                "The guide `docs/", $file, "`, shown when the crate is documented with all its \
                 features (`cargo doc --all-features`, as on docs.rs)."
            )
        )]
        pub mod $name {}
    };
}

guide!(features, "features.md");
guide!(login_history, "login-history.md");
guide!(session_events, "session-events.md");
guide!(concurrent_requests, "concurrent-requests.md");
guide!(axum_login, "axum-login.md");
guide!(codecs, "codecs.md");
guide!(backends_and_tables, "backends-and-tables.md");
guide!(operations, "operations.md");
guide!(cache, "cache.md");
guide!(testing, "testing.md");
guide!(scaling, "scaling.md");
guide!(architecture, "architecture.md");

/// SCALING.md's examples, compiled as doctests (the file is linked from the guides, not shown).
#[cfg(all(
    doctest,
    feature = "postgres",
    feature = "migration",
    feature = "tokio-postgres"
))]
#[doc = include_str!("../SCALING.md")]
struct ScalingExamples;
