//! One test binary for the integration tests that share the process freely.
//!
//! Each file beside this one is a module here, so `cargo test` compiles and
//! links the crate's generic kernels into one binary instead of thirteen
//! (on the 2-core CI machine that was most of the fresh-clone run). Run one
//! file's tests with its module path as the filter:
//! `cargo test --test suite layers::` or `cargo test --test suite fuzz:: -- --nocapture`.
//!
//! `alloc.rs` and `hostile.rs` install their own global allocators and
//! `serde.rs` needs a feature the default build lacks, so each of those stays
//! a binary of its own (see `[[test]]` in Cargo.toml).

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
