//! Image preprocessing.
