//! TensorFlow frozen GraphDef import.
