#![deny(unsafe_code)]
#![warn(missing_docs)]
//! sepconv (skeleton; crate docs come with the layers).

pub mod error;
#[cfg(feature = "tf")]
pub mod io;
pub mod preprocess;

pub use error::{Error, Result, Shape};
