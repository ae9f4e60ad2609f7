//! One test binary for the integration tests that share the process freely.
//!
//! Each file beside this one is a module here, so `cargo test` compiles and
//! links the crate's generic kernels into one binary instead of thirteen
//! (on the 2-core AMD EPYC Zen 3, the test build after the library took 174 s
//! instead of 248 s, and a fresh-clone CI 1,033 s instead of 1,133). Run one
//! file's tests with its module path as the filter:
//! `cargo test --test suite layers::` or `cargo test --test suite fuzz:: -- --nocapture`.
//!
//! `alloc.rs` and `hostile.rs` install their own global allocators and
//! `serde.rs` needs a feature the default build lacks, so each of those stays
//! a binary of its own (see `[[test]]` in Cargo.toml). Cargo.toml turns
//! `autotests` off, so a new file in `tests/` runs only once it is a module
//! here or a `[[test]]` there; `every_test_file_is_built` fails until it is.

mod common;
#[cfg(feature = "tf")]
#[path = "../examples/support/mod.rs"]
mod support;

mod errors;
mod fuzz;
mod layers;
mod layout;
mod mobilenet;
mod mobilenet_v2;
mod net;
mod non_finite;
mod oracle;
mod pool_dense;
mod pretrained;
mod quickstart;
mod tf_import;

/// Every `tests/*.rs` file is a module of this binary or a `[[test]]` of its
/// own: with `autotests = false`, cargo would otherwise never build it.
#[test]
fn every_test_file_is_built() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let read = |p: &str| std::fs::read_to_string(root.join(p)).expect(p);
    let (suite, manifest) = (read("tests/suite.rs"), read("Cargo.toml"));
    let mut unbuilt = Vec::new();
    for entry in std::fs::read_dir(root.join("tests")).expect("tests/") {
        let path = entry.expect("tests/ entry").path();
        let Some(stem) = path.file_stem().and_then(|s| s.to_str()) else {
            continue;
        };
        if path.extension().is_some_and(|e| e == "rs")
            && stem != "suite"
            && !suite.lines().any(|l| l == format!("mod {stem};"))
            && !manifest.contains(&format!("[[test]]\nname = \"{stem}\"\n"))
        {
            unbuilt.push(stem.to_owned());
        }
    }
    assert!(
        unbuilt.is_empty(),
        "tests/{{{}}}.rs: neither a `mod` in tests/suite.rs nor a [[test]] in Cargo.toml",
        unbuilt.join(",")
    );
}
