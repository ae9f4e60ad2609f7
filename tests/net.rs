//! Property tests of composed networks: random sequential stacks (convs,
//! depthwise, pointwise, pooling, activations, BatchNorm, residual blocks
//! with and without projections, flatten + dense, global pooling) over
//! random shapes, strides, paddings, batches and input layouts, against the
//! same stack run layer by layer through the oracle of `sepconv::reference`.
//!
//! Dyadic stacks (values k/4, no BatchNorm, no averaging over counts that
//! are not powers of two) are exact in f64: there the network must match
//! the oracle bit for bit. The others are compared with a tolerance scaled
//! by the output's magnitude. Each case also runs on 1 and 2 threads (the
//! same bits), into a NaN-poisoned output of another layout, and with
//! garbage in the caller's scratch.

use crate::common::{self, Stored, View, array, view_strategy};
use ndarray::{Array1, Array2, Array4, ArrayView4, Zip};
use proptest::prelude::*;
use sepconv::init::SplitMix64;
use sepconv::{
    Activation, AvgPool2d, BatchNorm, Conv2d, ConvParams, Dense, DepthwiseConv2d, Error, Flatten,
    Float, GlobalAvgPool, Layer, MaxPool2d, Padding, PointwiseConv2d, Residual, Sequential,
    reference,
};

/// One layer of a random stack, with its weights.
#[derive(Clone, Debug)]
enum Op<F> {
    Conv {
        weight: Array4<F>,
        bias: Option<Array1<F>>,
        params: ConvParams,
        groups: usize,
        act: Activation,
    },
    Depthwise {
        weight: Array4<F>,
        bias: Option<Array1<F>>,
        params: ConvParams,
        act: Activation,
    },
    Pointwise {
        weight: Array2<F>,
        bias: Option<Array1<F>>,
        act: Activation,
    },
    AvgPool {
        kernel: usize,
        stride: usize,
        padding: Padding,
        count_padding: bool,
    },
    MaxPool {
        kernel: usize,
        stride: usize,
        padding: Padding,
    },
    Act(Activation),
    Norm(BatchNorm<F>),
    Residual {
        body: Vec<Op<F>>,
        projection: Option<Box<Op<F>>>,
        act: Activation,
    },
    Flatten,
    GlobalPool,
    Dense {
        weight: Array2<F>,
        bias: Option<Array1<F>>,
        act: Activation,
    },
}

/// Draws random layers that fit the shape they are given.
struct Gen {
    rng: SplitMix64,
    exact: bool,
    seed: u64,
}

impl Gen {
    fn below(&mut self, n: usize) -> usize {
        (self.rng.next_u64() % n as u64) as usize
    }
    fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo + 1)
    }
    fn coin(&mut self) -> bool {
        self.below(2) == 0
    }
    fn act(&mut self) -> Activation {
        [Activation::Identity, Activation::Relu, Activation::Relu6][self.below(3)]
    }
    fn tensor<F: Float, D: ndarray::Dimension>(
        &mut self,
        shape: impl ndarray::IntoDimension<Dim = D>,
    ) -> ndarray::Array<F, D> {
        self.seed += 1;
        array(shape, self.seed, self.exact)
    }
    fn bias<F: Float>(&mut self, n: usize) -> Option<Array1<F>> {
        self.coin().then(|| self.tensor(n))
    }
    /// A padding under which a `k`-tap window (stride `s`) fits `size`.
    fn padding(&mut self, k: usize, size: [usize; 2]) -> Padding {
        match self.below(3) {
            0 if k <= size[0] && k <= size[1] => Padding::Valid,
            1 => {
                let p = self.below(k.min(2));
                Padding::Explicit {
                    top: p,
                    bottom: self.below(k.min(2)),
                    left: self.below(k.min(2)),
                    right: p,
                }
            }
            _ => Padding::Same,
        }
    }
    fn params(&mut self, k: usize, stride: usize, size: [usize; 2]) -> ConvParams {
        ConvParams {
            stride: [stride; 2],
            dilation: [1, 1],
            padding: self.padding(k, size),
        }
    }

    /// A layer for input `shape` (spatial extent only while `spatial`).
    fn op<F: Float>(&mut self, shape: [usize; 4], in_residual: bool) -> Op<F> {
        let [_, h, w, c] = shape;
        let size = [h, w];
        loop {
            match self.below(10) {
                0 | 1 => {
                    let k = self.range(1, 3);
                    let g = [1, c][self.below(2)];
                    let cout = g * self.range(1, 6usize.div_ceil(g));
                    let stride = self.range(1, 2);
                    let params = self.params(k, stride, size);
                    return Op::Conv {
                        weight: self.tensor((k, k, c / g, cout)),
                        bias: self.bias(cout),
                        params,
                        groups: g,
                        act: self.act(),
                    };
                }
                2 | 3 => {
                    let (k, m) = (self.range(1, 3), self.range(1, 2));
                    let stride = self.range(1, 2);
                    let params = self.params(k, stride, size);
                    return Op::Depthwise {
                        weight: self.tensor((k, k, c, m)),
                        bias: self.bias(c * m),
                        params,
                        act: self.act(),
                    };
                }
                4 | 5 => {
                    let cout = self.range(1, 12);
                    return Op::Pointwise {
                        weight: self.tensor((c, cout)),
                        bias: self.bias(cout),
                        act: self.act(),
                    };
                }
                // Exact stacks average only over 4 elements (2×2, unpadded).
                6 if self.exact => {
                    if h >= 2 && w >= 2 {
                        return Op::AvgPool {
                            kernel: 2,
                            stride: 2,
                            padding: Padding::Valid,
                            count_padding: false,
                        };
                    }
                }
                6 => {
                    let k = self.range(1, 3);
                    let stride = self.range(1, 2);
                    return Op::AvgPool {
                        kernel: k,
                        stride,
                        padding: self.padding(k, size),
                        count_padding: self.coin(),
                    };
                }
                7 => {
                    let k = self.range(1, 3);
                    let stride = self.range(1, 3);
                    return Op::MaxPool {
                        kernel: k,
                        stride,
                        padding: self.padding(k, size),
                    };
                }
                8 if self.exact => return Op::Act(self.act()),
                8 => {
                    let v = |g: &mut Self| g.tensor::<F, _>(c).mapv(|x| x.abs() + F::one());
                    let bn = BatchNorm::new(
                        self.tensor(c),
                        self.tensor(c),
                        self.tensor(c),
                        v(self),
                        F::from_f64_lossy(1e-3),
                    )
                    .unwrap();
                    return Op::Norm(bn);
                }
                _ if in_residual => {}
                _ => return self.residual(shape),
            }
        }
    }

    /// A residual block: a same-shape body, or a body that changes the
    /// channels and (maybe) the size with a projection that does the same.
    fn residual<F: Float>(&mut self, shape: [usize; 4]) -> Op<F> {
        let [_, _, _, c] = shape;
        let act = self.act();
        if self.coin() {
            // Same shape: stride-1 SAME depthwise and c → c pointwise.
            let dw = Op::Depthwise {
                weight: self.tensor((3, 3, c, 1)),
                bias: self.bias(c),
                params: ConvParams {
                    padding: Padding::Same,
                    ..ConvParams::default()
                },
                act: self.act(),
            };
            let pw = Op::Pointwise {
                weight: self.tensor((c, c)),
                bias: self.bias(c),
                act: Activation::Identity,
            };
            let body = match self.below(3) {
                0 => vec![dw],
                1 => vec![pw],
                _ => vec![dw, pw],
            };
            return Op::Residual {
                body,
                projection: None,
                act,
            };
        }
        // Stride s, c → c2: 3×3 SAME depthwise (stride s) then pointwise; the
        // projection is a 1×1 conv with stride s (its output ⌈h/s⌉, as SAME's).
        let (s, c2) = (self.range(1, 2), self.range(1, 8));
        let body = vec![
            Op::Depthwise {
                weight: self.tensor((3, 3, c, 1)),
                bias: self.bias(c),
                params: ConvParams {
                    stride: [s; 2],
                    padding: Padding::Same,
                    ..ConvParams::default()
                },
                act: self.act(),
            },
            Op::Pointwise {
                weight: self.tensor((c, c2)),
                bias: self.bias(c2),
                act: Activation::Identity,
            },
        ];
        let projection = Op::Conv {
            weight: self.tensor((1, 1, c, c2)),
            bias: self.bias(c2),
            params: ConvParams {
                stride: [s; 2],
                ..ConvParams::default()
            },
            groups: 1,
            act: Activation::Identity,
        };
        Op::Residual {
            body,
            projection: Some(Box::new(projection)),
            act,
        }
    }
}

/// The sepconv layer for an op.
fn layer<F: Float>(op: &Op<F>) -> Box<dyn Layer<F>> {
    match op.clone() {
        Op::Conv {
            weight,
            bias,
            params,
            groups,
            act,
        } => Box::new(
            Conv2d::builder(weight)
                .bias_opt(bias)
                .params(params)
                .groups(groups)
                .activation(act)
                .build()
                .unwrap(),
        ),
        Op::Depthwise {
            weight,
            bias,
            params,
            act,
        } => Box::new(
            DepthwiseConv2d::builder(weight)
                .bias_opt(bias)
                .params(params)
                .activation(act)
                .build()
                .unwrap(),
        ),
        Op::Pointwise { weight, bias, act } => Box::new(
            PointwiseConv2d::new(weight, bias)
                .unwrap()
                .with_activation(act),
        ),
        Op::AvgPool {
            kernel,
            stride,
            padding,
            count_padding,
        } => Box::new(
            AvgPool2d::new(kernel)
                .with_stride(stride)
                .with_padding(padding)
                .with_count_padding(count_padding),
        ),
        Op::MaxPool {
            kernel,
            stride,
            padding,
        } => Box::new(
            MaxPool2d::new(kernel)
                .with_stride(stride)
                .with_padding(padding),
        ),
        Op::Act(a) => Box::new(a),
        Op::Norm(bn) => Box::new(bn),
        Op::Residual {
            body,
            projection,
            act,
        } => {
            let mut block = Residual::new(sequential(&body)).with_activation(act);
            if let Some(p) = projection {
                block = block.with_projection(BoxedLayer(layer(&p)));
            }
            Box::new(block)
        }
        Op::Flatten => Box::new(Flatten),
        Op::GlobalPool => Box::new(GlobalAvgPool),
        Op::Dense { weight, bias, act } => {
            Box::new(Dense::new(weight, bias).unwrap().with_activation(act))
        }
    }
}

/// A boxed layer as a layer (to hand one to `with_projection`).
#[derive(Clone, Debug)]
struct BoxedLayer<F: Float>(Box<dyn Layer<F>>);

impl<F: Float> Layer<F> for BoxedLayer<F> {
    fn output_shape(&self, input: [usize; 4]) -> sepconv::Result<[usize; 4]> {
        self.0.output_shape(input)
    }
    fn cost(&self, input: [usize; 4]) -> sepconv::Result<sepconv::Cost> {
        self.0.cost(input)
    }
    fn info(&self) -> sepconv::LayerInfo {
        self.0.info()
    }
    fn scratch_len(&self, input: [usize; 4]) -> sepconv::Result<usize> {
        self.0.scratch_len(input)
    }
    fn forward_with_scratch(
        &self,
        x: ArrayView4<'_, F>,
        out: ndarray::ArrayViewMut4<'_, F>,
        scratch: &mut [F],
    ) -> sepconv::Result<()> {
        self.0.forward_with_scratch(x, out, scratch)
    }
}

fn sequential<F: Float>(ops: &[Op<F>]) -> Sequential<F> {
    let mut net = Sequential::new();
    for (i, op) in ops.iter().enumerate() {
        net.push_boxed(format!("op{i}"), layer(op));
    }
    net
}

fn activate<F: Float>(mut y: Array4<F>, act: Activation) -> Array4<F> {
    y.mapv_inplace(|v| act.apply(v));
    y
}

/// The oracle: each op through `sepconv::reference` (or its formula).
fn oracle<F: Float>(ops: &[Op<F>], x: ArrayView4<'_, F>) -> Array4<F> {
    let mut y = x.to_owned();
    for op in ops {
        y = oracle_op(op, y.view());
    }
    y
}

fn oracle_op<F: Float>(op: &Op<F>, x: ArrayView4<'_, F>) -> Array4<F> {
    let b = |b: &Option<Array1<F>>| b.as_ref().map(|b| b.view()).map(|v| v.to_owned());
    match op {
        Op::Conv {
            weight,
            bias,
            params,
            groups,
            act,
        } => {
            let bias = b(bias);
            let y = reference::conv2d(
                x,
                weight.view(),
                bias.as_ref().map(|b| b.view()),
                params,
                *groups,
            );
            activate(y.unwrap(), *act)
        }
        Op::Depthwise {
            weight,
            bias,
            params,
            act,
        } => {
            let y = reference::depthwise_conv2d(
                x,
                weight.view(),
                bias.as_ref().map(|b| b.view()),
                params,
            );
            activate(y.unwrap(), *act)
        }
        Op::Pointwise { weight, bias, act } => {
            let y = reference::pointwise_conv2d(x, weight.view(), bias.as_ref().map(|b| b.view()));
            activate(y.unwrap(), *act)
        }
        Op::AvgPool {
            kernel,
            stride,
            padding,
            count_padding,
        } => {
            reference::avg_pool2d(x, [*kernel; 2], [*stride; 2], *padding, *count_padding).unwrap()
        }
        Op::MaxPool {
            kernel,
            stride,
            padding,
        } => reference::max_pool2d(x, [*kernel; 2], [*stride; 2], *padding).unwrap(),
        Op::Act(a) => activate(x.to_owned(), *a),
        Op::Norm(bn) => {
            // y = γ·(x − mean)/√(var + ε) + β, in f64.
            let mut y = x.to_owned();
            for mut lane in y.lanes_mut(ndarray::Axis(3)) {
                for (c, v) in lane.iter_mut().enumerate() {
                    let f = |a: &Array1<F>| a[c].to_f64_exact();
                    let z = f(bn.gamma()) * (v.to_f64_exact() - f(bn.mean()))
                        / (f(bn.variance()) + bn.epsilon().to_f64_exact()).sqrt()
                        + f(bn.beta());
                    *v = F::from_f64_lossy(z);
                }
            }
            y
        }
        Op::Residual {
            body,
            projection,
            act,
        } => {
            let mut y = oracle(body, x);
            let shortcut = match projection {
                Some(p) => oracle_op(p, x),
                None => x.to_owned(),
            };
            Zip::from(&mut y)
                .and(&shortcut)
                .for_each(|y, &s| *y = act.apply(*y + s));
            y
        }
        Op::Flatten => {
            let [n, h, w, c] = [x.shape()[0], x.shape()[1], x.shape()[2], x.shape()[3]];
            x.as_standard_layout()
                .into_owned()
                .into_shape_with_order((n, 1, 1, h * w * c))
                .unwrap()
        }
        Op::GlobalPool => reference::global_avg_pool(x).unwrap(),
        Op::Dense { weight, bias, act } => {
            let y = reference::dense(x, weight.view(), bias.as_ref().map(|b| b.view()));
            activate(y.unwrap(), *act)
        }
    }
}

/// A random stack for `input`, every layer fitting the shape before it.
fn stack<F: Float>(seed: u64, input: [usize; 4], depth: usize, exact: bool) -> Vec<Op<F>> {
    let mut g = Gen {
        rng: SplitMix64::new(seed),
        exact,
        seed: seed.wrapping_mul(1000),
    };
    let mut ops = Vec::new();
    let mut shape = input;
    while ops.len() < depth {
        let op = g.op::<F>(shape, false);
        // Keep the stack's shapes small and valid: redraw ops that would not fit.
        let Ok(next) = layer(&op).output_shape(shape) else {
            continue;
        };
        if next[3] > 16 {
            continue;
        }
        ops.push(op);
        shape = next;
    }
    // A head, sometimes: global pooling, or flatten + dense.
    match g.below(3) {
        0 if !exact => ops.push(Op::GlobalPool),
        1 => {
            let features = shape[1] * shape[2] * shape[3];
            let out = g.range(1, 10);
            ops.push(Op::Flatten);
            ops.push(Op::Dense {
                weight: g.tensor((features, out)),
                bias: g.bias(out),
                act: g.act(),
            });
        }
        _ => {}
    }
    ops
}

fn pool(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap()
}

fn bits<F: Float>(a: &Array4<F>) -> Vec<u64> {
    a.iter().map(|v| v.to_f64_exact().to_bits()).collect()
}

#[derive(Clone, Debug)]
struct Case {
    seed: u64,
    input: [usize; 4],
    depth: usize,
    exact: bool,
    view: View,
}

fn case() -> impl Strategy<Value = Case> {
    (
        any::<u64>(),
        1usize..=3,
        1usize..=11,
        1usize..=11,
        1usize..=6,
        1usize..=4,
        any::<bool>(),
        view_strategy(),
    )
        .prop_map(|(seed, n, h, w, c, depth, exact, view)| Case {
            seed,
            input: [n, h, w, c],
            depth,
            exact,
            view,
        })
}

fn run_case<F: Float + common::Tolerance>(p: &Case, exact_bits: bool) -> Result<(), TestCaseError> {
    let ops = stack::<F>(p.seed, p.input, p.depth, p.exact);
    let net = sequential(&ops);
    let x: Array4<F> = array(p.input, p.seed ^ 0xA5, p.exact);
    let stored = Stored::new(&x, p.view);
    let want = oracle(&ops, x.view());
    let shape = net.output_shape(p.input).unwrap();
    prop_assert_eq!(want.shape(), &shape[..]);
    // 1 and 2 threads: the same bits.
    let one = pool(1).install(|| net.forward(stored.view())).unwrap();
    let two = pool(2).install(|| net.forward(stored.view())).unwrap();
    prop_assert!(bits(&one) == bits(&two), "1 and 2 threads differ");
    // Caller's scratch full of garbage, output of another layout full of NaN.
    let mut scratch = vec![F::from_f64_lossy(1e30); net.scratch_len(p.input).unwrap()];
    let mut out = common::poisoned::<F>(shape, true);
    net.forward_with_scratch(stored.view(), out.view_mut(), &mut scratch)
        .unwrap();
    prop_assert!(
        bits(&out) == bits(&one),
        "forward_with_scratch differs from forward"
    );
    if exact_bits {
        prop_assert!(
            bits(&one) == bits(&want),
            "exact stack differs from the oracle: {:?}\n{ops:?}",
            one.iter().zip(&want).find(|(a, b)| a != b)
        );
    } else {
        let scale = want.iter().fold(1f64, |m, v| m.max(v.to_f64_exact().abs()));
        // Tolerances of the per-layer tests, over a few layers.
        let tol = F::REL * 64.0 * scale;
        for (i, (g, w)) in one.iter().zip(&want).enumerate() {
            let (g, w) = (g.to_f64_exact(), w.to_f64_exact());
            prop_assert!(
                (g - w).abs() <= tol || (g.is_nan() && w.is_nan()),
                "element {i}: {g} vs oracle {w} (tol {tol})\n{ops:?}"
            );
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 192, ..ProptestConfig::default() })]

    #[test]
    fn random_stacks_match_the_oracle_f64(p in case()) {
        run_case::<f64>(&p, p.exact)?;
    }

    #[test]
    fn random_stacks_match_the_oracle_f32(p in case()) {
        run_case::<f32>(&p, false)?;
    }
}

/// A mismatch between two layers names the layer, its name, its type, the
/// shape it was given and what it expected; a residual with unequal shapes
/// says both; nothing the caller passed is written.
#[test]
fn shape_errors_name_the_layer_and_both_shapes() {
    let net = Sequential::<f32>::new()
        .with_named(
            "dw",
            DepthwiseConv2d::builder(Array4::ones((3, 3, 4, 1)))
                .build()
                .unwrap(),
        )
        .with_named(
            "pw",
            PointwiseConv2d::new(Array2::ones((8, 2)), None).unwrap(),
        );
    let err = net.output_shape([1, 8, 8, 4]).unwrap_err();
    match &err {
        Error::Layer {
            index,
            name,
            kind,
            input,
            source,
        } => {
            assert_eq!((*index, name.as_str(), *kind), (1, "pw", "PointwiseConv2d"));
            assert_eq!(input.0, [1, 6, 6, 4]);
            assert!(matches!(
                **source,
                Error::ChannelMismatch {
                    expected: 8,
                    got: 4,
                    ..
                }
            ));
        }
        e => panic!("{e}"),
    }
    assert_eq!(
        err.to_string(),
        "layer 1 (\"pw\", PointwiseConv2d) on input [1, 6, 6, 4]: \
         PointwiseConv2d input: expected 8 input channels, got 4"
    );
    let x = Array4::from_elem((1, 8, 8, 4), 1.0f32);
    let mut out = Array4::from_elem((1, 6, 6, 2), 7.0f32);
    assert!(net.forward_into(x.view(), out.view_mut()).is_err());
    assert!(out.iter().all(|&v| v == 7.0) && x.iter().all(|&v| v == 1.0));
    // The first layer's own errors are wrapped too: a window larger than the input.
    let err = net.output_shape([1, 2, 2, 4]).unwrap_err().to_string();
    assert!(
        err.starts_with("layer 0 (\"dw\", DepthwiseConv2d) on input [1, 2, 2, 4]: height:"),
        "{err}"
    );

    let wide =
        Sequential::new().with(PointwiseConv2d::<f32>::new(Array2::ones((4, 6)), None).unwrap());
    let err = Residual::new(wide.clone())
        .output_shape([1, 3, 3, 4])
        .unwrap_err();
    assert!(
        matches!(&err, Error::ShapeMismatch { expected, got, .. } if expected.0 == [1, 3, 3, 6] && got.0 == [1, 3, 3, 4]),
        "{err}"
    );
    let strided = Residual::new(wide).with_projection(
        Conv2d::builder(Array4::<f32>::ones((1, 1, 4, 6)))
            .stride(2)
            .build()
            .unwrap(),
    );
    let err = strided.output_shape([1, 3, 3, 4]).unwrap_err();
    assert!(
        matches!(&err, Error::ShapeMismatch { expected, got, .. } if expected.0 == [1, 3, 3, 6] && got.0 == [1, 2, 2, 6]),
        "{err}"
    );
    // A scratch too short is an error, not a panic.
    let mut out = Array4::zeros((1, 6, 6, 8));
    let ok = Sequential::new()
        .with(
            DepthwiseConv2d::builder(Array4::<f32>::ones((3, 3, 4, 1)))
                .build()
                .unwrap(),
        )
        .with(PointwiseConv2d::new(Array2::ones((4, 8)), None).unwrap());
    let needed = ok.scratch_len([1, 8, 8, 4]).unwrap();
    assert!(needed > 0);
    let mut short = vec![0.0; needed - 1];
    assert!(matches!(
        ok.forward_with_scratch(x.view(), out.view_mut(), &mut short),
        Err(Error::ShapeMismatch { .. })
    ));
}

/// The summary of a composed network: containers opened, totals the sum of
/// the layers' costs, the same figures as text, markdown and JSON.
#[test]
fn summary_of_a_composed_network() {
    let c = 8;
    let body = Sequential::new()
        .with_named(
            "dw",
            DepthwiseConv2d::builder(Array4::<f32>::ones((3, 3, c, 1)))
                .padding(Padding::Same)
                .build()
                .unwrap(),
        )
        .with_named(
            "pw",
            PointwiseConv2d::new(Array2::ones((c, c)), None).unwrap(),
        );
    let net = Sequential::new()
        .with_named(
            "stem",
            Conv2d::builder(Array4::ones((3, 3, 3, c)))
                .stride(2)
                .padding(Padding::Same)
                .build()
                .unwrap(),
        )
        .with_named("block", Residual::new(body))
        .with_named("pool", GlobalAvgPool)
        .with_named(
            "fc",
            Dense::new(Array2::ones((c, 10)), Some(Array1::zeros(10))).unwrap(),
        );
    let s = net.summary([2, 32, 32, 3]).unwrap();
    let names: Vec<&str> = s.rows.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        names,
        ["stem", "block/dw", "block/pw", "block/add", "pool", "fc"]
    );
    let macs = 2 * 16 * 16 * (27 * c) + 2 * 16 * 16 * (9 * c + c * c) + 2 * c * 10;
    assert_eq!(s.total.mult_adds, macs as u64);
    assert_eq!(s.total, net.cost([2, 32, 32, 3]).unwrap());
    assert_eq!(
        s.total.params.weights,
        (27 * c + 9 * c + c * c + c * 10) as u64
    );
    assert_eq!(s.total.params.biases, 10);
    assert_eq!(s.rows[0].info.filter.as_deref(), Some("3×3×3×8"));
    assert_eq!(s.rows[1].info.filter.as_deref(), Some("3×3×8 dw"));
    let text = s.to_text();
    assert!(
        text.contains("Conv2d / s2") && text.contains("block/add"),
        "{text}"
    );
    // 2·16·16·216 + 2·16·16·136 + 160 = 180,384 mult-adds, as the footer prints it.
    assert_eq!(macs, 180_384);
    assert!(
        text.contains("batch 2: 180,384 mult-adds (360,768 FLOPs)"),
        "{text}"
    );
    assert!(s.to_markdown().starts_with("| layer | type / stride |"));
    let json: serde_json::Value = serde_json::from_str(&s.to_json()).unwrap();
    assert_eq!(json["total"]["mult_adds"], macs as u64);
    assert_eq!(json["layers"][3]["name"], "block/add");
    assert_eq!(json["layers"][0]["stride"], serde_json::json!([2, 2]));
}

/// A network changed after a forward (a layer pushed, an algorithm forced)
/// plans again instead of running on the buffers planned for the old
/// layers; and a network switching between input shapes keeps a plan for
/// each (the regression a review found: a pushed layer ran on the old plan
/// and panicked on a missing buffer).
#[test]
fn plans_follow_changes_to_the_network() {
    let x = Array4::from_shape_fn((2, 6, 6, 4), |(n, y, x, c)| (n + y + x + c) as f32 / 8.0);
    let mut net = Sequential::<f32>::new()
        .with(PointwiseConv2d::new(Array2::from_elem((4, 3), 0.5), None).unwrap());
    let before = net.forward(x.view()).unwrap();
    net.push(Activation::Relu6);
    net.push(PointwiseConv2d::new(Array2::from_elem((3, 2), -1.0), None).unwrap());
    let after = net.forward(x.view()).unwrap();
    // Each output: −1 × the sum of three equal ReLU6 channels.
    let want = before
        .mapv(|v| -3.0 * v.clamp(0.0, 6.0))
        .slice_move(ndarray::s![.., .., .., ..2]);
    assert_eq!(after, want);
    // Forcing another algorithm after a forward: the conv's kernel (and
    // scratch) change; the result stays within the tolerance.
    let conv = Conv2d::builder(Array4::from_elem((3, 3, 2, 4), 0.25f32))
        .padding(Padding::Same)
        .build()
        .unwrap();
    let net = Sequential::new().with(conv);
    let y = Array4::from_shape_fn((1, 5, 5, 2), |(_, a, b, c)| (a * 5 + b + c) as f32 / 16.0);
    let fast = net.forward(y.view()).unwrap();
    let net = net.with_algorithm(sepconv::Algorithm::Portable);
    assert_eq!(
        net.forward(y.view()).unwrap(),
        fast,
        "dyadic: every path is exact"
    );
    // Two shapes in turn, each twice: the same results as a fresh network.
    for _ in 0..2 {
        assert_eq!(net.forward(y.view()).unwrap(), fast);
        let other = Array4::from_elem((3, 4, 4, 2), 1.0f32);
        let fresh = Sequential::new().with(
            Conv2d::builder(Array4::from_elem((3, 3, 2, 4), 0.25f32))
                .padding(Padding::Same)
                .build()
                .unwrap(),
        );
        assert_eq!(
            net.forward(other.view()).unwrap(),
            fresh.forward(other.view()).unwrap()
        );
    }
}

/// A 3×3 depthwise conv of `c` channels with a bias and ReLU6, its
/// (dyadic) weights from `seed` and `seed + 1`.
fn depthwise3x3<F: Float>(c: usize, seed: u64, params: ConvParams) -> Op<F> {
    Op::Depthwise {
        weight: array([3, 3, c, 1], seed, true),
        bias: Some(array([c], seed + 1, true)),
        params,
        act: Activation::Relu6,
    }
}

/// A 1×1 conv whose output passes 1 MiB an image and the depthwise conv
/// after it run band by band inside a `Sequential` (MobileNet v1's first
/// layers): the oracle's bits on every path, at 1 and 2 threads, strides 1
/// and 2, dilation, explicit padding, odd heights, a batch, a strided input,
/// the pair first, last or in between, and a caller's output in another
/// layout. A profiled forward runs the two layers one after the other: the
/// same bits again.
#[test]
fn pointwise_then_depthwise_bands_match_the_oracle_exactly() {
    fn check<F: Float>() {
        let explicit = Padding::Explicit {
            top: 2,
            bottom: 1,
            left: 0,
            right: 2,
        };
        // (input, 1×1 outputs, stride, dilation, padding)
        let cases = [
            ([2, 40, 36, 24], 192, 1, 1, Padding::Same),
            ([1, 41, 40, 16], 192, 2, 1, Padding::Same),
            ([1, 97, 31, 8], 96, 1, 2, explicit),
            ([1, 131, 21, 16], 96, 2, 1, Padding::Same),
            // Inputs that pass 1 MiB too: chains that start with the
            // depthwise conv, and the longer ones.
            ([1, 72, 64, 64], 96, 1, 1, Padding::Same),
            ([1, 75, 66, 64], 96, 2, 1, Padding::Same),
        ];
        let mut rng = 0u64;
        let mut next = || {
            rng += 1;
            rng
        };
        for (input, c, stride, dilation, padding) in cases {
            let [n, h, w, c_in] = input;
            assert!(h * w * c * std::mem::size_of::<F>() > 1 << 20);
            let pw = Op::Pointwise {
                weight: array([c_in, c], next(), true),
                bias: Some(array([c], next(), true)),
                act: Activation::Relu6,
            };
            let params = ConvParams {
                stride: [stride; 2],
                dilation: [dilation; 2],
                padding,
            };
            let dw = depthwise3x3(c, next(), params);
            let after = Op::Pointwise {
                weight: array([c, 8], next(), true),
                bias: None,
                act: Activation::Identity,
            };
            let x: Array4<F> = array(input, next(), true);
            let wide = Stored::new(&x, View::ColumnStrided);
            let strided = wide.view();
            // A depthwise conv that keeps the size (3×3 SAME, stride 1) on
            // `c_in` and on `c` channels, and a 1×1 conv back to `c_in`.
            let same = ConvParams {
                stride: [1, 1],
                dilation: [1, 1],
                padding: Padding::Same,
            };
            let keep = |c: usize, seed: u64| depthwise3x3(c, seed, same);
            let first = keep(c_in, next());
            let skip = Op::Depthwise {
                weight: array([1, 1, c, 1], next(), true),
                bias: None,
                params: ConvParams {
                    stride: [2, 2],
                    dilation: [1, 1],
                    padding: Padding::Valid,
                },
                act: Activation::Identity,
            };
            let wide_dw = keep(c, next());
            let back = Op::Pointwise {
                weight: array([c, c_in], next(), true),
                bias: None,
                act: Activation::Relu,
            };
            let chains = match h * w * c_in * std::mem::size_of::<F>() > 1 << 20 {
                false => vec![
                    vec![pw.clone(), dw.clone()],
                    // A 1×1 depthwise conv of stride 2 reads every other row.
                    vec![pw.clone(), skip.clone()],
                    vec![
                        Op::Act(Activation::Relu),
                        pw.clone(),
                        dw.clone(),
                        after.clone(),
                    ],
                ],
                // Chains of three and five convs: depthwise first (on a
                // strided input the chain starts at the 1×1 conv), and
                // 1×1 → depthwise → 1×1 → 1×1 → depthwise.
                true => vec![
                    vec![first.clone(), pw.clone(), dw.clone()],
                    vec![first, pw.clone(), dw.clone(), after.clone()],
                    vec![pw.clone(), wide_dw, back, pw.clone(), dw.clone()],
                ],
            };
            for ops in chains {
                let want = oracle(&ops, x.view());
                let want_bits = bits(&want);
                // Every path that runs kernels, so bands (the reference
                // path runs layer by layer: it is `want` again).
                let mut algorithms = sepconv::Algorithm::available();
                algorithms.retain(|&a| a != sepconv::Algorithm::Reference);
                algorithms.push(sepconv::Algorithm::Auto);
                for algorithm in algorithms {
                    let net = sequential(&ops).with_algorithm(algorithm);
                    for threads in [1, 2] {
                        pool(threads).install(|| {
                            for (view, what) in [(x.view(), "standard"), (strided, "strided")] {
                                let say = || {
                                    format!(
                                        "{} {algorithm:?}, {} layers, {input:?} → {c}, s={stride} \
                                         d={dilation} {padding:?}, {threads} thread(s), {what}",
                                        F::NAME,
                                        ops.len()
                                    )
                                };
                                let y = net.forward(view).unwrap();
                                assert!(bits(&y) == want_bits, "{}", say());
                                // In a caller's scratch of exactly scratch_len
                                // elements (NaN, so that a read of what
                                // nothing wrote shows), into an output stored
                                // channels first too: a chain's inner maps
                                // have no buffer there, and a chain that
                                // ends the network writes one of the two
                                // buffers, then the caller's output.
                                let len = net.scratch_len(input).unwrap();
                                let mut scratch = vec![F::nan(); len];
                                let mut out = Array4::<F>::from_elem(
                                    (n, want.shape()[3], want.shape()[1], want.shape()[2]),
                                    F::nan(),
                                );
                                let out_view = out.view_mut().permuted_axes([0, 2, 3, 1]);
                                net.forward_with_scratch(view, out_view, &mut scratch)
                                    .unwrap();
                                let out = out.view().permuted_axes([0, 2, 3, 1]).to_owned();
                                assert!(
                                    bits(&out) == want_bits,
                                    "forward_with_scratch, channels first: {}",
                                    say()
                                );
                                if threads == 2 || what == "strided" {
                                    continue;
                                }
                                // Layer by layer, and into an output stored
                                // channels first (once per path: each check
                                // runs the whole stack again).
                                let (p, _) = net.forward_profiled(view).unwrap();
                                assert!(bits(&p) == want_bits, "profiled: {}", say());
                                let mut out = Array4::<F>::from_elem(
                                    (n, want.shape()[3], want.shape()[1], want.shape()[2]),
                                    F::nan(),
                                );
                                let out_view = out.view_mut().permuted_axes([0, 2, 3, 1]);
                                net.forward_into(view, out_view).unwrap();
                                let out = out.view().permuted_axes([0, 2, 3, 1]).to_owned();
                                assert!(
                                    bits(&out) == want_bits,
                                    "channels-first output: {}",
                                    say()
                                );
                            }
                        });
                    }
                }
            }
        }
    }
    check::<f32>();
    check::<f64>();
}

/// A chain that starts with a standard conv on the direct kernel (an RGB
/// stem, stride 2), then depthwise and 1×1 convs, all with maps past 1 MiB:
/// the oracle's bits on every path, at 1 and 2 threads, a batch, and a
/// strided input (on which the chain starts after the stem).
#[test]
fn stem_chains_match_the_oracle_exactly() {
    fn check<F: Float>() {
        let same = |stride: usize| ConvParams {
            stride: [stride; 2],
            dilation: [1, 1],
            padding: Padding::Same,
        };
        let input = [2, 150, 140, 3];
        let stem = Op::Conv {
            weight: array([3, 3, 3, 64], 1, true),
            bias: Some(array([64], 2, true)),
            params: same(2),
            groups: 1,
            act: Activation::Relu6,
        };
        let dw = |c: usize, stride: usize, seed: u64| depthwise3x3(c, seed, same(stride));
        let pw = Op::Pointwise {
            weight: array([64, 96], 5, true),
            bias: Some(array([96], 6, true)),
            act: Activation::Relu6,
        };
        let after = Op::Pointwise {
            weight: array([96, 32], 9, true),
            bias: None,
            act: Activation::Identity,
        };
        let x: Array4<F> = array(input, 7, true);
        let wide = Stored::new(&x, View::ColumnStrided);
        let strided = wide.view();
        for ops in [
            vec![stem.clone(), dw(64, 1, 3), pw.clone(), dw(96, 2, 8)],
            vec![stem.clone(), dw(64, 1, 3), pw.clone(), dw(96, 1, 8), after],
        ] {
            let want = bits(&oracle(&ops, x.view()));
            let mut algorithms = sepconv::Algorithm::available();
            algorithms.retain(|&a| a != sepconv::Algorithm::Reference);
            for algorithm in algorithms {
                let net = sequential(&ops).with_algorithm(algorithm);
                for threads in [1, 2] {
                    for (view, what) in [(x.view(), "standard"), (strided, "strided")] {
                        let say = || {
                            format!(
                                "{} {algorithm:?}, {} layers, {threads} thread(s), {what}",
                                F::NAME,
                                ops.len()
                            )
                        };
                        let y = pool(threads).install(|| net.forward(view)).unwrap();
                        assert!(bits(&y) == want, "{}", say());
                        // In a caller's scratch of exactly scratch_len
                        // elements (NaN): a strided input is copied into one
                        // of its buffers for the stem to read in place.
                        let mut scratch = vec![F::nan(); net.scratch_len(input).unwrap()];
                        let mut out = Array4::<F>::from_elem(y.raw_dim(), F::nan());
                        pool(threads)
                            .install(|| {
                                net.forward_with_scratch(view, out.view_mut(), &mut scratch)
                            })
                            .unwrap();
                        assert!(bits(&out) == want, "forward_with_scratch: {}", say());
                    }
                }
            }
        }
    }
    check::<f32>();
    check::<f64>();
}

/// A residual sum over a map large enough to be split over threads (at least
/// two chunks of 16,384 elements): the bits of the same sum taken here, in
/// one pass, at 1 and 2 threads, with the identity shortcut and a projected
/// one, in a batch of two, and for a strided input (which takes one pass).
#[test]
fn large_residual_sums_match_exactly_on_any_threads() {
    let input = [2, 24, 40, 48];
    let x: Array4<f32> = array(input, 31, true);
    let w: Array2<f32> = array((48, 48), 32, true);
    let p: Array2<f32> = array((48, 48), 33, true);
    let body =
        |w: &Array2<f32>| Sequential::new().with(PointwiseConv2d::new(w.clone(), None).unwrap());
    let expected = |shortcut: Array4<f32>, act: Activation| {
        let mut y = reference::pointwise_conv2d(x.view(), w.view(), None).unwrap();
        Zip::from(&mut y)
            .and(&shortcut)
            .for_each(|o, &s| *o = act.apply(*o + s));
        bits(&y)
    };
    let projected = reference::pointwise_conv2d(x.view(), p.view(), None).unwrap();
    let wide = Stored::new(&x, View::ColumnStrided);
    for (block, want, what) in [
        (
            Residual::new(body(&w)),
            expected(x.clone(), Activation::Identity),
            "identity",
        ),
        (
            Residual::new(body(&w)).with_activation(Activation::Relu6),
            expected(x.clone(), Activation::Relu6),
            "identity, ReLU6",
        ),
        (
            Residual::new(body(&w))
                .with_projection(PointwiseConv2d::new(p.clone(), None).unwrap())
                .with_activation(Activation::Relu),
            expected(projected.clone(), Activation::Relu),
            "projected, ReLU",
        ),
    ] {
        for threads in [1, 2] {
            for (view, layout) in [(x.view(), "standard"), (wide.view(), "strided")] {
                let y = pool(threads).install(|| block.forward(view)).unwrap();
                assert!(
                    bits(&y) == want,
                    "{what}, {threads} thread(s), {layout} input"
                );
            }
        }
    }
}

/// Layers that keep their scratch between `forward_into` calls (an im2col
/// conv, a separable block) serve callers on several threads at once: each
/// call gets a buffer of its own (the kept one, or a new one while another
/// call holds it), so every output is exactly the one the layer computes on
/// a scratch of the caller's, for inputs of two sizes in turn (the larger
/// grows the kept buffer while other calls run).
#[test]
fn layers_keeping_scratch_serve_concurrent_callers() {
    use sepconv::SeparableConv2d;
    use sepconv::init::Init;
    let rng = &mut SplitMix64::new(21);
    let conv = Conv2d::builder(Init::HeNormal.conv2d([3, 3, 8, 12], rng).unwrap())
        .padding(Padding::Same)
        .build()
        .unwrap();
    let sep = SeparableConv2d::builder(
        Init::HeNormal.depthwise([3, 3, 8, 1], rng).unwrap(),
        Init::HeNormal.dense([8, 12], rng).unwrap(),
    )
    .padding(Padding::Same)
    .depthwise_activation(Activation::Relu6)
    .build()
    .unwrap();
    let shapes = [[1, 9, 11, 8], [2, 23, 17, 8]];
    let inputs: Vec<Array4<f32>> = shapes
        .iter()
        .map(|&s| Array4::from_shape_simple_fn(s, || rng.uniform_in(-1.0, 1.0) as f32))
        .collect();
    for (name, layer) in [
        ("Conv2d", &conv as &dyn Layer<f32>),
        ("SeparableConv2d", &sep),
    ] {
        let expected: Vec<Array4<f32>> = inputs
            .iter()
            .map(|x| {
                let shape = [x.shape()[0], x.shape()[1], x.shape()[2], x.shape()[3]];
                let mut scratch = vec![f32::NAN; layer.scratch_len(shape).unwrap()];
                let mut out = Array4::zeros(layer.output_shape(shape).unwrap());
                layer
                    .forward_with_scratch(x.view(), out.view_mut(), &mut scratch)
                    .unwrap();
                out
            })
            .collect();
        std::thread::scope(|s| {
            for t in 0..4 {
                let (inputs, expected) = (&inputs, &expected);
                s.spawn(move || {
                    for call in 0..25 {
                        let i = (call + t) % 2;
                        let mut out = Array4::from_elem(expected[i].raw_dim(), f32::NAN);
                        layer
                            .forward_into(inputs[i].view(), out.view_mut())
                            .unwrap();
                        assert_eq!(
                            bits(&out),
                            bits(&expected[i]),
                            "{name}, thread {t}, call {call}"
                        );
                    }
                });
            }
        });
    }
}
