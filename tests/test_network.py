"""Tests for the CNN model: geometry, initialization, PyTorch weight layout, forward, validation.

The forward pass is checked against tests/oracles.py (explicit loops over
PyTorch-layout weights) and, when torch is installed, against torch itself.
"""
import numpy as np
import pytest

import newtoncnn
from newtoncnn import CNN, Conv, Dense, MaxPool, paper_network
from newtoncnn.layers import ConvGeometry, DenseGeometry

import oracles

# (input_shape, layers): strides, paddings, pools (one dropping pixels), conv without pool,
# 1–3 dense layers, 1 or 3 input channels.
ARCHS = {
    "conv-pool-dense": ((1, 6, 6), [Conv(2, 3, padding=1), MaxPool(2), Dense(3)]),
    "stride2-pad2": ((1, 7, 5), [Conv(3, 3, stride=2, padding=2), Dense(4)]),
    "pool-drops-pixels": ((2, 7, 8), [Conv(3, 2), MaxPool(3), Dense(2)]),
    "two-convs-three-dense": ((1, 8, 7), [Conv(2, 3, padding=1), MaxPool(2), Conv(3, 2, stride=1),
                                          Dense(5), Dense(4), Dense(3)]),
    "rgb-stride3": ((3, 9, 10), [Conv(2, 4, stride=3, padding=3), MaxPool(2), Dense(2), Dense(3)]),
    "k1-conv-then-k5": ((3, 5, 5), [Conv(2, 1), Conv(3, 5, padding=0), Dense(2)]),
    "three-convs": ((1, 11, 9), [Conv(2, 3, stride=2, padding=1), Conv(2, 3, padding=1), MaxPool(2),
                                 Conv(2, 2), Dense(3)]),
    "pool1-is-no-pool": ((1, 5, 5), [Conv(2, 3), MaxPool(1), Dense(2)]),
    "kernel-fills-padded-input": ((2, 5, 6), [Conv(3, 7, padding=1), Dense(2)]),
    "stride-skips-pixels": ((1, 9, 9), [Conv(2, 2, stride=3), Dense(3)]),
    "outputs-from-padding-only": ((1, 3, 3), [Conv(2, 1, stride=3, padding=3), Dense(2)]),
}


def _net(name, dtype="float64", loss="squared"):
    shape, layers = ARCHS[name]
    return CNN(shape, layers, loss=loss, dtype=dtype)


def _data(net, n, seed):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n,) + net.input_shape)


def _theta(net, seed):
    """He init plus non-zero biases, so biases matter in every comparison."""
    rng = np.random.default_rng(seed + 1000)
    theta = net.init_params(seed)
    weights = [(W, rng.standard_normal(b.shape) * 0.1) for W, b in net.get_weights(theta)]
    return net.set_weights(weights)


def _expected_sizes(input_shape, layers):
    """Per-layer output shape from the size formulas of docs/guide/objective.rst (floor everywhere)."""
    c, h, w = input_shape
    sizes = []
    for pos, layer in enumerate(layers):
        if isinstance(layer, Conv):
            hp, wp = h + 2 * layer.padding, w + 2 * layer.padding
            h = (hp - layer.kernel_size) // layer.stride + 1
            w = (wp - layer.kernel_size) // layer.stride + 1
            c = layer.filters
            sizes.append(("conv", (c, h, w)))
        elif isinstance(layer, MaxPool):
            h, w = h // layer.pool_size, w // layer.pool_size
            sizes.append(("pool", (c, h, w)))
        else:
            sizes.append(("dense", (layer.units,)))
    return sizes


# ---------------------------------------------------------------- geometry
@pytest.mark.parametrize("name", sorted(ARCHS))
def test_geometry_follows_design_formulas(name):
    shape, layers = ARCHS[name]
    net = CNN(shape, layers, dtype="float64")
    expected = _expected_sizes(shape, layers)
    # the oracle's own per-layer shapes agree with the formulas
    theta = _theta(net, 0)
    trace = oracles.naive_activations(layers, net.get_weights(theta), _data(net, 1, 0)[0])
    assert [(kind, a.shape) for kind, a in trace] == expected
    # the network's geometry: S^m before and Z^{m+1} after the (optional) pool of each conv layer
    after_conv = []
    for pos, (kind, size) in enumerate(expected):
        if kind == "conv":
            nxt = expected[pos + 1] if pos + 1 < len(expected) else None
            after_conv.append(nxt[1] if nxt and nxt[0] == "pool" else size)
    convs = [g for g in net.geometry if isinstance(g, ConvGeometry)]
    assert [(g.out_c, g.out_h, g.out_w) for g in convs] == after_conv
    conv_sizes = [size for kind, size in expected if kind == "conv"]
    assert [(g.out_c, g.conv_h, g.conv_w) for g in convs] == conv_sizes
    assert [(g.in_c, g.in_h, g.in_w) for g in convs] == [shape] + after_conv[:-1]
    # dense layers: in = flattened last feature map, out = units
    dense = [g for g in net.geometry if isinstance(g, DenseGeometry)]
    c, h, w = after_conv[-1]
    ins = [c * h * w] + [g.out_features for g in dense[:-1]]
    assert [g.in_features for g in dense] == ins
    assert [g.out_features for g in dense] == [s[0] for k, s in expected if k == "dense"]
    assert [g.relu for g in dense] == [True] * (len(dense) - 1) + [False]
    assert net.n_classes == dense[-1].out_features


def test_geometry_floor_with_stride_and_pool():
    # 10 + 2 - 4 = 8, /3 -> floor 2, +1 = 3; pool 2 -> floor(3/2) = 1
    net = CNN((1, 10, 11), [Conv(2, 4, stride=3, padding=1), MaxPool(2), Dense(2)])
    g = net.geometry[0]
    assert (g.padded_h, g.padded_w) == (12, 13)
    assert (g.conv_h, g.conv_w) == (3, 4)
    assert (g.out_h, g.out_w) == (1, 2)
    assert net.geometry[1].in_features == 2 * 1 * 2


def test_geometry_used_plane_is_what_the_pool_reads():
    # the paper's third conv: a 7x7 plane pooled by 2 uses 6x6 of it; flops count those
    g = CNN((64, 7, 7), [Conv(64, 3, padding=1), MaxPool(2), Dense(2)]).geometry[0]
    assert (g.conv_h, g.conv_w, g.used_h, g.used_w, g.out_h, g.out_w) == (7, 7, 6, 6, 3, 3)
    assert g.flops(5) == 2.0 * 5 * 64 * 64 * 9 * 36
    g = CNN((1, 9, 8), [Conv(2, 2), MaxPool(3), Dense(2)]).geometry[0]
    assert (g.conv_h, g.conv_w, g.used_h, g.used_w) == (8, 7, 6, 6)
    g = CNN((1, 5, 7), [Conv(2, 3), Dense(2)]).geometry[0]
    assert (g.used_h, g.used_w) == (g.conv_h, g.conv_w) == (3, 5)


def test_paper_preset_geometry_and_parameter_count():
    net = paper_network((1, 28, 28), 10)
    convs = net.geometry[:3]
    assert [(g.out_c, g.out_h, g.out_w) for g in convs] == [(32, 14, 14), (64, 7, 7), (64, 3, 3)]
    assert [(g.kernel, g.padding, g.stride, g.pool) for g in convs] == [
        (5, 2, 1, 2), (3, 1, 1, 2), (3, 1, 1, 2)]
    assert [(g.conv_h, g.conv_w) for g in convs] == [(28, 28), (14, 14), (7, 7)]
    dense = net.geometry[3]
    assert (dense.in_features, dense.out_features, dense.relu) == (576, 10, False)
    expected = (32 * 1 * 25 + 32) + (64 * 32 * 9 + 64) + (64 * 64 * 9 + 64) + (576 * 10 + 10)
    assert net.n_params == expected == 62026
    assert net.n_classes == 10
    assert net.dtype == np.float32 and net.loss == "squared"
    assert newtoncnn.paper_network((3, 32, 32), 10).geometry[3].in_features == 64 * 4 * 4


@pytest.mark.parametrize("name", sorted(ARCHS))
def test_n_params_counts_every_weight_and_bias(name):
    net = _net(name)
    weights = net.get_weights(net.init_params(0))
    assert net.n_params == sum(W.size + b.size for W, b in weights)


# ---------------------------------------------------------------- initialization
def test_he_init_statistics():
    net = paper_network((1, 28, 28), 10, dtype="float64")
    theta = net.init_params(0)
    assert theta.dtype == np.float64 and theta.shape == (net.n_params,)
    for (W, b), fan_in in zip(net.get_weights(theta), [25, 288, 576, 576]):
        assert np.all(b == 0)
        expected_std = np.sqrt(2.0 / fan_in)
        # std of the sample std ≈ σ/sqrt(2N); N ≥ 800 here, so 10 % is > 4 standard errors
        assert abs(W.std() / expected_std - 1) < 0.1
        assert abs(W.mean()) < 5 * expected_std / np.sqrt(W.size)


def test_he_init_uses_fan_in_of_each_layer():
    # two layers with very different fan-in: the scales must differ accordingly
    net = CNN((4, 10, 10), [Conv(16, 5), Dense(3)], dtype="float64")
    W1, W2 = (W for W, _ in net.get_weights(net.init_params(1)))
    assert abs(W1.std() / np.sqrt(2 / 100) - 1) < 0.1
    assert abs(W2.std() / np.sqrt(2 / 576) - 1) < 0.15


def test_init_is_deterministic_for_a_random_state():
    net = _net("two-convs-three-dense", dtype="float32")
    a, b = net.init_params(42), net.init_params(42)
    assert a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, net.init_params(43))
    np.testing.assert_array_equal(net.init_params(np.random.default_rng(42)), a)
    assert not np.array_equal(net.init_params(), net.init_params())


def test_init_rejects_bad_random_state():
    with pytest.raises(TypeError, match="random_state"):
        _net("conv-pool-dense").init_params("seed")


# ---------------------------------------------------------------- weights in PyTorch layout
@pytest.mark.parametrize("name", sorted(ARCHS))
def test_get_weights_shapes_are_pytorch_layout(name):
    shape, layers = ARCHS[name]
    net = CNN(shape, layers)
    weights = net.get_weights(net.init_params(0))
    expected, c, features = [], shape[0], None
    for layer, (_, size) in zip(layers, _expected_sizes(shape, layers)):
        if isinstance(layer, Conv):
            expected.append(((layer.filters, c, layer.kernel_size, layer.kernel_size),
                             (layer.filters,)))
            c = layer.filters
            features = int(np.prod(size))
        elif isinstance(layer, MaxPool):
            features = int(np.prod(size))
        else:
            expected.append(((layer.units, features), (layer.units,)))
            features = layer.units
    assert [(W.shape, b.shape) for W, b in weights] == expected
    assert all(W.dtype == net.dtype and b.dtype == net.dtype for W, b in weights)


@pytest.mark.parametrize("name", sorted(ARCHS))
def test_get_set_weights_round_trip_exactly(name):
    net = _net(name)
    theta = _theta(net, 3)
    weights = net.get_weights(theta)
    np.testing.assert_array_equal(net.set_weights(weights), theta)
    back = net.get_weights(net.set_weights(weights))
    for (W, b), (W2, b2) in zip(weights, back):
        np.testing.assert_array_equal(W, W2)
        np.testing.assert_array_equal(b, b2)


def test_get_weights_returns_copies():
    net = _net("conv-pool-dense")
    theta = _theta(net, 0)
    before = theta.copy()
    W, b = net.get_weights(theta)[0]
    W[...] = 99.0
    b[...] = 99.0
    np.testing.assert_array_equal(theta, before)


def test_set_weights_accepts_lists_and_other_dtypes():
    net = _net("conv-pool-dense", dtype="float32")
    weights = net.get_weights(net.init_params(0))
    as_lists = [(W.astype(np.float64).tolist(), list(b)) for W, b in weights]
    theta = net.set_weights(as_lists)
    assert theta.dtype == np.float32
    np.testing.assert_array_equal(theta, net.set_weights(weights))


# ---------------------------------------------------------------- forward
@pytest.mark.parametrize("name", sorted(ARCHS))
def test_forward_matches_naive_loops_float64(name):
    shape, layers = ARCHS[name]
    net = CNN(shape, layers, dtype="float64")
    theta = _theta(net, 5)
    X = _data(net, 4, 5)
    out = net.forward(theta, X)
    expected = oracles.naive_forward(layers, net.get_weights(theta), X)
    assert out.shape == (4, net.n_classes) and out.dtype == np.float64
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12 * np.abs(expected).max())


@pytest.mark.parametrize("name", sorted(ARCHS))
def test_forward_float32_agrees_with_float64(name, gemm_engine):
    net64 = _net(name, dtype="float64")
    net32 = _net(name, dtype="float32")
    theta = _theta(net64, 6)
    X = _data(net64, 5, 6)
    out64 = net64.forward(theta, X)
    out32 = net32.forward(theta.astype(np.float32), X.astype(np.float32))
    assert out32.dtype == np.float32
    # single precision: ~1e-7 per operation, a few hundred terms per output
    np.testing.assert_allclose(out32, out64, rtol=1e-5, atol=1e-5 * np.abs(out64).max())


def test_forward_exercises_relu_and_pool_paths():
    # guard against a vacuous oracle comparison: hidden units are both clamped and active
    name = "two-convs-three-dense"
    shape, layers = ARCHS[name]
    net = _net(name)
    theta = _theta(net, 5)
    traces = [oracles.naive_activations(layers, net.get_weights(theta), image)
              for image in _data(net, 4, 5)]
    for pos in range(len(layers) - 1):
        a = np.stack([t[pos][1] for t in traces])
        assert (a == 0).any() and (a > 0).any(), f"layer {pos} is all clamped or all active"
    assert (np.stack([t[-1][1] for t in traces]) < 0).any()  # the output layer has no ReLU


def test_forward_one_channel_accepts_3d_input():
    net = _net("conv-pool-dense")
    theta = _theta(net, 7)
    X = _data(net, 3, 7)
    out4 = net.forward(theta, X)
    np.testing.assert_array_equal(net.forward(theta, X[:, 0]), out4)
    np.testing.assert_allclose(out4, oracles.naive_forward(ARCHS["conv-pool-dense"][1],
                                                            net.get_weights(theta), X[:, 0]),
                               rtol=1e-12, atol=1e-12)


def test_forward_accepts_integer_images_and_lists():
    net = _net("conv-pool-dense")
    theta = _theta(net, 8)
    X = np.random.default_rng(8).integers(0, 256, size=(3, 1, 6, 6)).astype(np.uint8)
    expected = net.forward(theta, X.astype(np.float64))
    np.testing.assert_array_equal(net.forward(theta, X), expected)
    np.testing.assert_array_equal(net.forward(theta.tolist(), X.tolist()), expected)


def test_forward_accepts_read_only_X():
    # memory-mapped or shared data (np.load(mmap_mode="r"), joblib) is read-only
    net = _net("two-convs-three-dense")
    theta = _theta(net, 8)
    X = _data(net, 3, 8)
    expected = net.forward(theta, X)
    X.setflags(write=False)
    np.testing.assert_array_equal(net.forward(theta, X), expected)


def test_forward_accepts_read_only_theta():
    # θ of the model's dtype passes validation uncopied: every kernel must take it read-only
    net = _net("two-convs-three-dense")
    theta = _theta(net, 8)
    X = _data(net, 3, 8)
    expected = net.forward(theta, X)
    theta.setflags(write=False)
    np.testing.assert_array_equal(net.forward(theta, X), expected)


def test_forward_is_independent_of_batch_size():
    net = _net("two-convs-three-dense")
    theta = _theta(net, 9)
    X = _data(net, 7, 9)
    ref = net.forward(theta, X, batch_size=7)
    for bs in (1, 2, 3, 6, 100):
        np.testing.assert_allclose(net.forward(theta, X, batch_size=bs), ref,
                                   rtol=1e-13, atol=1e-14)


def test_forward_of_no_instances_is_empty():
    net = _net("conv-pool-dense")
    out = net.forward(_theta(net, 0), np.zeros((0, 1, 6, 6)))
    assert out.shape == (0, 3)


def test_predict_is_argmax_of_forward():
    net = _net("rgb-stride3")
    theta = _theta(net, 10)
    X = _data(net, 9, 10)
    out = net.forward(theta, X)
    pred = net.predict(theta, X, batch_size=2)
    np.testing.assert_array_equal(pred, np.argmax(out, axis=1))
    assert len(set(pred.tolist())) > 1, "test data should produce more than one class"


def test_forward_matches_pytorch_when_installed():
    torch = pytest.importorskip("torch")
    nn = torch.nn
    net = CNN((3, 9, 8), [Conv(4, 3, stride=2, padding=1), MaxPool(2), Conv(3, 2, padding=1),
                          Dense(5), Dense(3)], dtype="float64")
    theta = _theta(net, 11)
    X = _data(net, 4, 11)
    (W1, b1), (W2, b2), (W3, b3), (W4, b4) = net.get_weights(theta)
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3, stride=2, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(4, 3, 2, padding=1), nn.ReLU(), nn.Flatten(),
        nn.Linear(W3.shape[1], 5), nn.ReLU(), nn.Linear(5, 3)).double()
    params = [W1, b1, W2, b2, W3, b3, W4, b4]
    with torch.no_grad():
        for p, value in zip(model.parameters(), params):
            assert tuple(p.shape) == value.shape
            p.copy_(torch.from_numpy(value))
        expected = model(torch.from_numpy(X)).numpy()
    np.testing.assert_allclose(net.forward(theta, X), expected, rtol=1e-12, atol=1e-12)
    # and back: PyTorch's parameters give the same θ
    back = net.set_weights([(model[0].weight.detach().numpy(), model[0].bias.detach().numpy()),
                            (model[3].weight.detach().numpy(), model[3].bias.detach().numpy()),
                            (model[6].weight.detach().numpy(), model[6].bias.detach().numpy()),
                            (model[8].weight.detach().numpy(), model[8].bias.detach().numpy())])
    np.testing.assert_array_equal(back, theta)


# ---------------------------------------------------------------- bad input: forward
@pytest.fixture
def small():
    net = _net("conv-pool-dense")
    return net, _theta(net, 0), _data(net, 3, 0)


def test_forward_rejects_wrong_ndim(small):
    net, theta, X = small
    with pytest.raises(ValueError, match=r"X must have shape"):
        net.forward(theta, X.reshape(3, 36))
    with pytest.raises(ValueError, match=r"X must have shape"):
        net.forward(theta, X[None])
    with pytest.raises(ValueError, match=r"X must have shape"):
        net.forward(theta, X[0, 0, 0])


def test_forward_rejects_wrong_image_shape(small):
    net, theta, X = small
    with pytest.raises(ValueError, match=r"X must have shape \(n, 1, 6, 6\)"):
        net.forward(theta, np.zeros((3, 1, 6, 5)))
    with pytest.raises(ValueError, match=r"X must have shape"):
        net.forward(theta, np.zeros((3, 2, 6, 6)))
    rgb = _net("rgb-stride3")
    with pytest.raises(ValueError, match=r"X must have shape \(n, 3, 9, 10\)"):
        rgb.forward(_theta(rgb, 0), np.zeros((2, 9, 10)))  # 3-d means one channel only


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_forward_rejects_non_finite_X(small, bad):
    net, theta, X = small
    X = X.copy()
    X[1, 0, 2, 3] = bad
    with pytest.raises(ValueError, match=r"X contains NaN or inf"):
        net.forward(theta, X)


def test_forward_rejects_non_numeric_X(small):
    net, theta, X = small
    with pytest.raises(TypeError, match=r"X must be a numeric array"):
        net.forward(theta, X.astype(str))
    with pytest.raises(TypeError, match=r"X must be a numeric array"):
        net.forward(theta, X.astype(object))
    with pytest.raises(TypeError, match=r"X must be real"):
        net.forward(theta, X.astype(complex))


def test_forward_rejects_bad_theta(small):
    net, theta, X = small
    with pytest.raises(ValueError, match=r"theta must have shape \(%d,\)" % net.n_params):
        net.forward(theta[:-1], X)
    with pytest.raises(ValueError, match=r"theta must have shape"):
        net.forward(np.append(theta, 0.0), X)
    with pytest.raises(ValueError, match=r"theta must have shape"):
        net.forward(theta[None, :], X)
    bad = theta.copy()
    bad[2] = np.nan
    with pytest.raises(ValueError, match=r"theta contains NaN"):
        net.forward(bad, X)
    with pytest.raises(TypeError, match=r"theta must be a numeric array"):
        net.forward(theta.astype(str), X)
    with pytest.raises(ValueError, match=r"theta"):
        net.get_weights(theta[:5])


@pytest.mark.parametrize("bs,exc", [(0, ValueError), (-3, ValueError), (2.5, TypeError),
                                    (True, TypeError), ("10", TypeError)])
def test_forward_rejects_bad_batch_size(small, bs, exc):
    net, theta, X = small
    with pytest.raises(exc, match=r"batch_size"):
        net.forward(theta, X, batch_size=bs)


def test_set_weights_rejects_wrong_shapes():
    net = _net("conv-pool-dense")
    weights = net.get_weights(net.init_params(0))
    with pytest.raises(ValueError, match=r"weights must hold 2"):
        net.set_weights(weights[:1])
    with pytest.raises(ValueError, match=r"weights must hold 2"):
        net.set_weights(weights + weights[:1])
    (W1, b1), (W2, b2) = weights
    with pytest.raises(ValueError, match=r"weights\[1\]"):
        net.set_weights([(W1, b1), (W2.T, b2)])  # (in, out): TensorFlow's layout
    with pytest.raises(ValueError, match=r"weights\[0\]"):
        net.set_weights([(W1.transpose(0, 2, 3, 1), b1), (W2, b2)])  # channels-last kernel
    with pytest.raises(ValueError, match=r"weights\[0\]"):
        net.set_weights([(W1, b1[:-1]), (W2, b2)])
    with pytest.raises(ValueError, match=r"weights\[1\]"):
        net.set_weights([(W1, b1), (W2.ravel(), b2)])


def test_set_weights_rejects_non_finite_values():
    net = _net("conv-pool-dense")
    (W1, b1), (W2, b2) = net.get_weights(net.init_params(0))
    W2 = W2.copy()
    W2[0, 0] = np.inf
    with pytest.raises(ValueError, match=r"NaN or inf"):
        net.set_weights([(W1, b1), (W2, b2)])


# ---------------------------------------------------------------- bad input: construction
def test_kernel_larger_than_padded_input_is_rejected():
    with pytest.raises(ValueError, match=r"layers\[0\].*kernel_size 6 is larger than the padded"):
        CNN((1, 5, 7), [Conv(2, 6), Dense(3)])
    with pytest.raises(ValueError, match=r"kernel_size 8"):
        CNN((1, 5, 7), [Conv(2, 8, padding=1), Dense(3)])  # padded 7x9: too short
    CNN((1, 5, 7), [Conv(2, 7, padding=1), Dense(3)])  # padded 7x9: fits exactly
    with pytest.raises(ValueError, match=r"layers\[2\].*kernel_size"):
        CNN((1, 8, 8), [Conv(2, 3), MaxPool(2), Conv(2, 4), Dense(3)])  # 3x3 after pool


def test_stack_leaving_no_pixels_is_rejected():
    with pytest.raises(ValueError, match=r"MaxPool\(4\) leaves no pixels"):
        CNN((1, 5, 5), [Conv(2, 3), MaxPool(4), Dense(3)])  # 3x3 conv output
    with pytest.raises(ValueError, match=r"layers\[0\].*leaves no pixels"):
        CNN((1, 9, 3), [Conv(2, 2, stride=2), MaxPool(2), Dense(3)])  # 5x1 conv output


def test_dense_before_conv_is_rejected():
    with pytest.raises(ValueError, match=r"layers\[1\]: a Conv layer cannot follow a Dense"):
        CNN((1, 6, 6), [Dense(5), Conv(2, 3), Dense(3)])


@pytest.mark.parametrize("layers,pos", [
    ([MaxPool(2), Conv(2, 3), Dense(3)], 0),
    ([Conv(2, 3), MaxPool(2), MaxPool(2), Dense(3)], 2),
    ([Conv(2, 3), Dense(4), MaxPool(2), Dense(3)], 2),
])
def test_maxpool_not_after_conv_is_rejected(layers, pos):
    with pytest.raises(ValueError, match=rf"layers\[{pos}\]: MaxPool must directly follow a Conv"):
        CNN((1, 12, 12), layers)


@pytest.mark.parametrize("layers", [[], [Conv(2, 3)], [Conv(2, 3), MaxPool(2)],
                                    [Dense(3), MaxPool(2)]])
def test_last_layer_must_be_dense(layers):
    with pytest.raises(ValueError, match=r"layers must end with a Dense"):
        CNN((1, 6, 6), layers)


def test_unknown_layer_type_is_rejected():
    with pytest.raises(TypeError, match=r"layers\[0\]: expected Conv, MaxPool or Dense"):
        CNN((1, 6, 6), ["conv", Dense(3)])


@pytest.mark.parametrize("make,exc,match", [
    (lambda: Conv(0, 3), ValueError, r"Conv filters must be >= 1"),
    (lambda: Conv(-2, 3), ValueError, r"Conv filters"),
    (lambda: Conv(2, 0), ValueError, r"Conv kernel_size must be >= 1"),
    (lambda: Conv(2, 2.5), TypeError, r"Conv kernel_size must be an integer"),
    (lambda: Conv(2.0, 3), TypeError, r"Conv filters must be an integer"),
    (lambda: Conv(2, 3, stride=0), ValueError, r"Conv stride"),
    (lambda: Conv(2, 3, stride=1.5), TypeError, r"Conv stride"),
    (lambda: Conv(2, 3, padding=-1), ValueError, r"Conv padding must be >= 0"),
    (lambda: Conv(2, 3, padding="same"), TypeError, r"Conv padding"),
    (lambda: MaxPool(0), ValueError, r"MaxPool pool_size"),
    (lambda: MaxPool(None), TypeError, r"MaxPool pool_size"),
    (lambda: Dense(0), ValueError, r"Dense units must be >= 1"),
    (lambda: Dense(True), TypeError, r"Dense units must be an integer"),
    (lambda: Dense("10"), TypeError, r"Dense units"),
])
def test_non_positive_or_non_integer_layer_sizes_are_rejected(make, exc, match):
    with pytest.raises(exc, match=match):
        make()


def test_numpy_integer_sizes_are_accepted():
    net = CNN((np.int64(1), np.int32(6), 6), [Conv(np.int64(2), np.int32(3)), Dense(np.int64(3))])
    assert net.input_shape == (1, 6, 6) and net.n_classes == 3


@pytest.mark.parametrize("shape,exc,match", [
    ((1, 0, 5), ValueError, r"input_shape\[1\] must be >= 1"),
    ((0, 5, 5), ValueError, r"input_shape\[0\]"),
    ((1, 5), ValueError, r"input_shape must be \(channels, height, width\)"),
    ((1, 5, 5, 5), ValueError, r"input_shape must be"),
    (5, TypeError, r"input_shape must be a \(channels, height, width\) tuple"),
    ((1, 5.0, 5), TypeError, r"input_shape\[1\] must be an integer"),
])
def test_bad_input_shape_is_rejected(shape, exc, match):
    with pytest.raises(exc, match=match):
        CNN(shape, [Conv(2, 3), Dense(3)])


@pytest.mark.parametrize("loss", ["hinge", "Squared", None, "mse"])
def test_unknown_loss_is_rejected(loss):
    with pytest.raises(ValueError, match=r"loss must be one of \('squared', 'softmax'\)"):
        CNN((1, 6, 6), [Conv(2, 3), Dense(3)], loss=loss)


@pytest.mark.parametrize("dtype,exc", [("float16", ValueError), ("int32", ValueError),
                                       (np.complex128, ValueError), ("double precision", TypeError),
                                       (object, ValueError)])
def test_unknown_dtype_is_rejected(dtype, exc):
    with pytest.raises(exc, match=r"dtype must be one of \('float32', 'float64'\)"):
        CNN((1, 6, 6), [Conv(2, 3), Dense(3)], dtype=dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64", np.float32, np.dtype("float64")])
def test_known_dtypes_are_accepted(dtype):
    net = CNN((1, 6, 6), [Conv(2, 3), Dense(3)], dtype=dtype)
    assert net.dtype == np.dtype(dtype)
    assert net.init_params(0).dtype == np.dtype(dtype)


def test_dtype_none_is_refused_rather_than_meaning_float64():
    with pytest.raises(TypeError, match="dtype"):
        CNN((1, 4, 4), [Dense(2)], dtype=None)


def test_set_weights_with_nan_names_the_weights():
    net = CNN((1, 4, 4), [Conv(1, 3), Dense(2)], dtype="float64")
    weights = net.get_weights(net.init_params(0))
    weights[0][0][0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="weights contain NaN"):
        net.set_weights(weights)
