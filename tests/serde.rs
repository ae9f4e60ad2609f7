//! The `serde` feature: configurations, costs and summaries through JSON and
//! back, field by field; `Display` of `Cost` and the summaries.
#![cfg(feature = "serde")]

use ndarray::Array4;
use sepconv::mobilenet::{MobileNetConfig, Summary, Variant};
use sepconv::{Activation, Algorithm, ConvParams, Cost, Padding, Params, Sequential};

fn round_trip<T>(value: &T) -> T
where
    T: serde::Serialize + serde::de::DeserializeOwned,
{
    let text = serde_json::to_string(value).unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{text}: {e}"))
}

#[test]
fn configs_round_trip() {
    let config = MobileNetConfig::new()
        .with_alpha(0.75)
        .with_resolution(160)
        .with_classes(1001)
        .with_activation(Activation::Relu)
        .with_variant(Variant::Shallow);
    assert_eq!(round_trip(&config), config);
    let json: serde_json::Value = serde_json::to_value(config).unwrap();
    assert_eq!(json["alpha"], 0.75);
    assert_eq!(json["resolution"], 160);
    assert_eq!(json["variant"], "Shallow");
    for p in [Padding::Valid, Padding::Same, Padding::symmetric(2)] {
        assert_eq!(round_trip(&p), p);
    }
    let params = ConvParams {
        stride: [2, 1],
        dilation: [1, 3],
        padding: Padding::Same,
    };
    assert_eq!(round_trip(&params), params);
    assert_eq!(round_trip(&Algorithm::Portable), Algorithm::Portable);
    let v2 = sepconv::mobilenet::v2::MobileNetV2Config::new()
        .with_alpha(0.35)
        .with_resolution(96);
    assert_eq!(round_trip(&v2), v2);
    let v2_summary = v2.summary().unwrap();
    assert_eq!(round_trip(&v2_summary), v2_summary);
    // A config that is not one is refused, not turned into a default.
    assert!(serde_json::from_str::<MobileNetConfig>(r#"{"alpha": 1.0}"#).is_err());
}

#[test]
fn costs_and_summaries_round_trip() {
    let summary = MobileNetConfig::new().summary().unwrap();
    let back: Summary = round_trip(&summary);
    assert_eq!(back, summary);
    let cost = summary.total;
    assert_eq!(round_trip(&cost), cost);
    let json = serde_json::to_value(cost).unwrap();
    assert_eq!(json["mult_adds"], 568_740_352);
    assert_eq!(json["params"]["weights"], 4_209_088);
    let p = Params {
        weights: 1,
        biases: 2,
        bn_affine: 3,
        bn_stats: 4,
    };
    assert_eq!(round_trip(&p), p);
}

#[test]
fn a_network_summary_serializes_its_rows() {
    let conv = sepconv::Conv2d::builder(Array4::<f32>::ones((3, 3, 3, 8)))
        .stride(2)
        .padding(Padding::Same)
        .build()
        .unwrap();
    let net = Sequential::new().with_named("stem", conv);
    let summary = net.summary([1, 32, 32, 3]).unwrap();
    let json = serde_json::to_value(&summary).unwrap();
    assert_eq!(json["input"], serde_json::json!([1, 32, 32, 3]));
    assert_eq!(json["rows"][0]["name"], "stem");
    assert_eq!(json["rows"][0]["info"]["kind"], "Conv2d");
    assert_eq!(json["rows"][0]["output"], serde_json::json!([1, 16, 16, 8]));
    assert_eq!(json["total"]["mult_adds"], 16 * 16 * 27 * 8);
    assert_eq!(
        summary.total.to_string(),
        Cost {
            mult_adds: 16 * 16 * 27 * 8,
            params: Params {
                weights: 216,
                ..Params::default()
            }
        }
        .to_string()
    );
    assert_eq!(summary.to_string(), summary.to_text());
}
