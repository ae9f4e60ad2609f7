//! Weight import/export.
#[cfg(feature = "tf")]
pub mod tf;
