//! Weight import/export.
//!
//! ```no_run
//! use sepconv::io::tf::GraphDefWeights;
//! use sepconv::mobilenet::{MobileNet, MobileNetConfig, MobileNetWeights};
//! // TF-slim's frozen MobileNet v1 0.5-160 (1001 classes).
//! let graph = GraphDefWeights::from_file(std::path::Path::new("mobilenet_v1_0.5_160_frozen.pb"))?;
//! let config = MobileNetConfig::new().with_alpha(0.5).with_resolution(160).with_classes(1001);
//! let net = MobileNet::<f32>::new(&config, &MobileNetWeights::from_graphdef(&graph, &config)?)?;
//! # Ok::<(), sepconv::Error>(())
//! ```
#[cfg(feature = "tf")]
pub mod tf;
