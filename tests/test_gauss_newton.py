"""Tests for the subsampled Gauss-Newton operator (docs/guide/gauss_newton.rst), in both settings.

    G_S v = v / (C l) + (1/|S|) Σ_{i∈S} J_iᵀ B_i J_i v

The oracles are independent of the code under test: J v against central finite
differences of ``net.forward`` (whose own correctness is tested against the loop
oracles in test_network.py), an explicit Jacobian built column by column from
finite differences along unit vectors, the loss Hessians B_i formed here as K×K
matrices, and the simpleNN worked check.

Finite differences are only exact where the network is smooth along the step: a
ReLU kink or a max-pool argmax change inside [θ − h v, θ + h v] makes them wrong.
Every difference below is therefore taken with a kink detector: the change of the
one-sided slopes, (z(θ+hv) − 2 z(θ) + z(θ−hv)) / h, is O(h) on a smooth piece but
O(1) when a kink lies inside the step (for a piecewise-linear crossing it is exactly
twice the error of the central difference). A detected kink fails the test's
precondition (choose other data) instead of loosening a tolerance.
"""
import numpy as np
import pytest

import newtoncnn
from newtoncnn import CNN, CNNObjective, Conv, Dense, MaxPool

import oracles
from problems import worked_problem

MODES = ["jacobian", "rop"]
LOSSES = ["squared", "softmax"]
H = 1e-6          # finite-difference step (directions have unit norm)
FD_RTOL = 1e-6    # central differences with h = 1e-6: truncation ~1e-12, rounding ~1e-10
EXACT = 1e-12     # identities that hold to rounding

# Small nets (≤ 150 parameters, so an explicit Jacobian by finite differences is cheap):
# strides 1–2, paddings 0–2, with and without pools (two of them dropping pixels),
# 1–3 dense layers, 1 and 2 input channels.
ARCHS = {
    "pad1-pool2": ((1, 6, 6), [Conv(2, 3, padding=1), MaxPool(2), Dense(3)]),
    "2ch-stride2-pad2-two-dense": ((2, 4, 4), [Conv(2, 3, stride=2, padding=2),
                                               Dense(3), Dense(3)]),
    "pool-drops-two-convs-three-dense": ((1, 7, 7), [Conv(2, 3), MaxPool(2),
                                                     Conv(2, 2, padding=1),
                                                     Dense(4), Dense(3), Dense(3)]),
    "2ch-stride2-nopad-k2": ((2, 6, 5), [Conv(3, 2, stride=2), Dense(2)]),
    "stride2-pad2-pool3-drops": ((1, 5, 6), [Conv(2, 3, stride=2, padding=2), MaxPool(3),
                                             Dense(3)]),
}
SEEDS = {name: 10 + i for i, name in enumerate(sorted(ARCHS))}
N = 7


def _problem(name, loss="squared", n=N, dtype="float64", seed=None):
    """Net, X, y and θ: He weights plus small random biases, so that ReLUs are mixed."""
    shape, layers = ARCHS[name]
    seed = SEEDS[name] if seed is None else seed
    net = CNN(shape, layers, loss=loss, dtype=dtype)
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n,) + shape)
    y = rng.integers(0, net.n_classes, size=n)
    theta = net.init_params(seed)
    weights = [(W, 0.1 * rng.standard_normal(b.shape)) for W, b in net.get_weights(theta)]
    return net, X, y, net.set_weights(weights)


def _unit(rng, size):
    v = rng.standard_normal(size)
    return v / np.linalg.norm(v)


def _rel(a, b):
    """‖a − b‖ / ‖b‖ in float64."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return np.linalg.norm(a - b) / np.linalg.norm(b)


def _ops(obj, theta, subset=None, **kw):
    return {mode: obj.gauss_newton(theta, subset=subset, mode=mode, **kw) for mode in MODES}


# ---------------------------------------------------------------- finite-difference oracles
def _fd_along(net, theta, X, v, h=H):
    """Central difference of the outputs along v, and the kink indicator per instance."""
    zp = net.forward(theta + h * v, X)
    zm = net.forward(theta - h * v, X)
    z0 = net.forward(theta, X)
    fd = (zp - zm) / (2 * h)
    kink = np.linalg.norm(zp - 2 * z0 + zm, axis=1) / h
    return fd, kink


def _assert_smooth(kink, fd, scale, what):
    """No ReLU kink / pool argmax change inside the step (see the module docstring)."""
    thr = 1e-3 * np.maximum(np.linalg.norm(fd, axis=-1), scale)
    bad = np.argwhere(kink > thr)
    assert bad.size == 0, (f"finite differences {what} cross a ReLU kink or a pool argmax "
                           f"change at {bad[:5].tolist()}: choose other data")


_JACOBIANS = {}


def _fd_jacobian(name, loss):
    """(net, X, y, θ, J) with J (n, K, P): column j = central difference along e_j."""
    key = (name, loss)
    if key not in _JACOBIANS:
        net, X, y, theta = _problem(name, loss)
        P = net.n_params
        J = np.empty((X.shape[0], net.n_classes, P))
        kinks = np.empty((P, X.shape[0]))
        for j in range(P):
            e = np.zeros(P)
            e[j] = 1.0
            J[:, :, j], kinks[j] = _fd_along(net, theta, X, e)
        _assert_smooth(kinks, np.moveaxis(J, 2, 0), np.abs(J).max(), "along unit vectors")
        _JACOBIANS[key] = (net, X, y, theta, J)
    return _JACOBIANS[key]


def _loss_hessians(loss, z):
    """B_i as explicit K×K matrices: 2 I, or diag(p) − p pᵀ with p = softmax(z_i)."""
    n, K = z.shape
    if loss == "squared":
        return np.broadcast_to(2.0 * np.eye(K), (n, K, K))
    B = np.empty((n, K, K))
    for i in range(n):
        e = np.exp(z[i] - z[i].max())
        p = e / e.sum()
        B[i] = np.diag(p) - np.outer(p, p)
    return B


def _explicit_gauss_newton(J, B, subset, C, l):
    """I/(C l) + (1/|S|) Σ_{i∈S} J_iᵀ B_i J_i with explicit loops over S (repeats count)."""
    P = J.shape[2]
    M = np.zeros((P, P))
    for i in subset:
        M += J[i].T @ B[i] @ J[i]
    return np.eye(P) / (C * l) + M / len(subset)


def _matrix_of(G):
    """The explicit matrix of G from G @ e_j."""
    P = G.shape[1]
    cols = []
    for j in range(P):
        e = np.zeros(P, dtype=G.dtype)
        e[j] = 1
        cols.append(G @ e)
    return np.column_stack(cols).astype(np.float64)


def test_archs_have_mixed_relus_and_the_intended_geometry():
    # the problems exercise what they claim: pools dropping pixels, ReLUs both on and off
    # (conv output, pool size, pooled output): conv % pool != 0 drops pixels
    drops = {"pool-drops-two-convs-three-dense": (5, 2, 2), "stride2-pad2-pool3-drops": (4, 3, 1)}
    for name, (conv, k, pooled) in drops.items():
        g = _problem(name)[0].geometry[0]
        assert (g.conv_h, g.conv_w % k, g.out_h) == (conv, g.conv_w % k, pooled)
        assert conv % k != 0 and g.conv_w % k != 0
    for name in ARCHS:
        net, X, y, theta = _problem(name)
        assert net.n_params <= 150
        active = []
        for i in range(3):
            for kind, a in oracles.naive_activations(ARCHS[name][1], net.get_weights(theta), X[i]):
                active.append(np.asarray(a) > 0)
        frac = np.concatenate([a.ravel() for a in active[:-1]]).mean()
        assert 0.15 < frac < 0.95, (name, frac)


# ---------------------------------------------------------------- J v
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("name", sorted(ARCHS))
def test_jvp_matches_central_differences(name, loss, mode):
    net, X, y, theta = _problem(name, loss)
    rng = np.random.default_rng(1)
    obj = CNNObjective(net, X, y, C=1.0)
    G = obj.gauss_newton(theta, mode=mode)
    assert G.mode == mode
    for _ in range(2):
        v = _unit(rng, net.n_params)
        fd, kink = _fd_along(net, theta, X, v)
        _assert_smooth(kink, fd, np.linalg.norm(fd) / np.sqrt(len(fd)), "along v")
        Jv = G.jvp(v)
        assert Jv.shape == (N, net.n_classes) and Jv.dtype == np.float64
        assert _rel(Jv, fd) < FD_RTOL
    # on a subset: the rows of S, in the order of S
    S = np.array([5, 0, 3])
    Gs = obj.gauss_newton(theta, subset=S, mode=mode)
    assert _rel(Gs.jvp(v), fd[S]) < FD_RTOL


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("name", sorted(ARCHS))
def test_jvp_and_vjp_are_adjoint(name, loss, mode):
    net, X, y, theta = _problem(name, loss)
    rng = np.random.default_rng(2)
    obj = CNNObjective(net, X, y, C=1.0, batch_size=3)
    for subset in (None, np.array([6, 2, 2, 4])):
        G = obj.gauss_newton(theta, subset=subset, mode=mode)
        count = N if subset is None else subset.size
        for _ in range(2):
            v = rng.standard_normal(net.n_params)
            U = rng.standard_normal((count, net.n_classes))
            Jv, JtU = G.jvp(v), G.vjp(U)
            assert JtU.shape == (net.n_params,) and JtU.dtype == np.float64
            lhs, rhs = np.vdot(Jv, U), np.vdot(v, JtU)
            scale = max(np.linalg.norm(Jv) * np.linalg.norm(U),
                        np.linalg.norm(v) * np.linalg.norm(JtU))
            assert abs(lhs - rhs) <= EXACT * scale


# ---------------------------------------------------------------- G_S against the explicit matrix
@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("name", sorted(ARCHS))
def test_gauss_newton_matches_explicit_matrix(name, loss):
    net, X, y, theta, J = _fd_jacobian(name, loss)
    C, l = 1.0, X.shape[0]
    B = _loss_hessians(loss, net.forward(theta, X))
    obj = CNNObjective(net, X, y, C=C, batch_size=4)
    rng = np.random.default_rng(3)
    for subset in (None, np.array([5, 1, 3]), np.array([2, 6, 2])):
        S = np.arange(l) if subset is None else subset
        M = _explicit_gauss_newton(J, B, S, C, l)
        # the data term, not the regularizer, must dominate what is compared
        assert np.linalg.norm(M - np.eye(len(M)) / (C * l)) > np.linalg.norm(np.eye(len(M)) / (C * l))
        for mode, G in _ops(obj, theta, subset).items():
            assert _rel(_matrix_of(G), M) < FD_RTOL, mode
            # and the two halves on their own: J v and Jᵀ U against the explicit Jacobian
            v = rng.standard_normal(net.n_params)
            U = rng.standard_normal((len(S), net.n_classes))
            assert _rel(G.jvp(v), J[S] @ v) < FD_RTOL
            assert _rel(G.vjp(U), np.einsum("ikp,ik->p", J[S], U)) < FD_RTOL


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("name", sorted(ARCHS))
def test_gauss_newton_is_symmetric_positive_definite_and_modes_agree(name, loss):
    net, X, y, theta = _problem(name, loss)
    C, l = 0.5, N
    reg = 1.0 / (C * l)
    obj = CNNObjective(net, X, y, C=C)
    rng = np.random.default_rng(4)
    for subset in (None, np.array([4, 0, 5])):
        count = N if subset is None else subset.size
        ops = _ops(obj, theta, subset)
        mats = {mode: _matrix_of(G) for mode, G in ops.items()}
        for mode, G in ops.items():
            A = mats[mode]
            norm2 = np.linalg.norm(A, 2)
            assert np.linalg.norm(A - A.T) <= EXACT * np.linalg.norm(A)
            lam = np.linalg.eigvalsh((A + A.T) / 2)
            # JᵀBJ is positive semidefinite, so λ_min ≥ 1/(C l) with l = all instances
            assert lam[0] > 0 and lam[0] >= reg - EXACT * norm2
            if count * net.n_classes < net.n_params:   # rank-deficient data term
                assert abs(lam[0] - reg) <= 1e-10 * norm2
            for _ in range(3):
                v, w = rng.standard_normal((2, net.n_params))
                Gv, Gw = G @ v, G @ w
                assert abs(v @ Gw - w @ Gv) <= EXACT * max(np.linalg.norm(v) * np.linalg.norm(Gw),
                                                           np.linalg.norm(w) * np.linalg.norm(Gv))
                assert v @ Gv >= reg * (v @ v) * (1 - EXACT) > 0
        assert _rel(mats["jacobian"], mats["rop"]) <= EXACT
        v = rng.standard_normal(net.n_params)
        U = rng.standard_normal((count, net.n_classes))
        assert _rel(ops["jacobian"] @ v, ops["rop"] @ v) <= EXACT
        assert _rel(ops["jacobian"].jvp(v), ops["rop"].jvp(v)) <= EXACT
        assert _rel(ops["jacobian"].vjp(U), ops["rop"].vjp(U)) <= EXACT


# ---------------------------------------------------------------- batch size and threads
@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("name", ["pool-drops-two-convs-three-dense", "2ch-stride2-pad2-two-dense"])
def test_products_do_not_depend_on_batch_size(name, loss):
    net, X, y, theta = _problem(name, loss)
    rng = np.random.default_rng(5)
    v = rng.standard_normal(net.n_params)
    for subset in (None, np.array([6, 1, 3, 0, 4])):
        count = N if subset is None else subset.size
        U = rng.standard_normal((count, net.n_classes))
        ref = CNNObjective(net, X, y, C=0.3, batch_size=N).gauss_newton(theta, subset, mode="rop")
        Gv, Jv, JtU = ref @ v, ref.jvp(v), ref.vjp(U)
        for bs in (1, 2, N):
            obj = CNNObjective(net, X, y, C=0.3, batch_size=bs)
            for mode, G in _ops(obj, theta, subset).items():
                assert _rel(G @ v, Gv) <= EXACT, (bs, mode)
                assert _rel(G.jvp(v), Jv) <= EXACT, (bs, mode)
                assert _rel(G.vjp(U), JtU) <= EXACT, (bs, mode)


@pytest.mark.parametrize("loss", LOSSES)
def test_products_do_not_depend_on_thread_count(loss):
    # images large enough that the first conv layer runs in many instance tiles,
    # so two threads really split the work
    shape, layers = (1, 20, 20), [Conv(2, 3, padding=1), MaxPool(2),
                                  Conv(3, 3, stride=2, padding=1), Dense(3)]
    net = CNN(shape, layers, loss=loss, dtype="float64")
    rng = np.random.default_rng(6)
    X = rng.standard_normal((300,) + shape)
    y = rng.integers(0, 3, size=300)
    theta = net.init_params(6) + 0.01 * rng.standard_normal(net.n_params)
    v = rng.standard_normal(net.n_params)
    U = rng.standard_normal((300, 3))
    before = newtoncnn.get_num_threads()
    results = {}
    try:
        for threads in (1, 2):
            newtoncnn.set_num_threads(threads)
            obj = CNNObjective(net, X, y, C=0.3)
            for mode, G in _ops(obj, theta).items():
                results[threads, mode] = (G @ v, G.jvp(v), G.vjp(U))
    finally:
        newtoncnn.set_num_threads(before)
    assert newtoncnn.get_num_threads() == before
    for mode in MODES:
        for a, b in zip(results[2, mode], results[1, mode]):
            assert _rel(a, b) <= EXACT, mode


# ---------------------------------------------------------------- the simpleNN worked check
@pytest.mark.parametrize("mode", MODES)
def test_simplenn_worked_check(mode):
    ex, net, obj, theta = worked_problem()
    g = obj.grad(theta)
    assert np.linalg.norm(g) == pytest.approx(ex["grad_norm"], rel=1e-10)
    G = obj.gauss_newton(theta, mode=mode)
    assert G.mode == mode
    l = ex["X"].shape[0]
    value = g @ (G @ g) - g @ g / (ex["C"] * l)
    assert abs(value - 230346.180998504) <= 1e-9 * 230346.180998504


def test_simplenn_worked_check_with_explicit_subset_of_everything():
    # S = all instances given explicitly (shuffled) is the same operator
    ex, net, obj, theta = worked_problem()
    g = obj.grad(theta)
    S = np.random.default_rng(7).permutation(ex["X"].shape[0])
    for mode in MODES:
        G = obj.gauss_newton(theta, subset=S, mode=mode)
        value = g @ (G @ g) - g @ g / (ex["C"] * ex["X"].shape[0])
        assert abs(value - 230346.180998504) <= 1e-9 * 230346.180998504


# ---------------------------------------------------------------- single precision
@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("name", ["pool-drops-two-convs-three-dense", "pad1-pool2"])
def test_float32_agrees_with_float64(name, loss, gemm_engine):
    net64, X, y, theta = _problem(name, loss)
    net32 = CNN(*ARCHS[name], loss=loss, dtype="float32")
    theta32 = theta.astype(np.float32)
    obj64 = CNNObjective(net64, X, y, C=0.5)
    obj32 = CNNObjective(net32, X, y, C=0.5)
    rng = np.random.default_rng(8)
    v32 = rng.standard_normal(net64.n_params).astype(np.float32)
    U32 = rng.standard_normal((N, net64.n_classes)).astype(np.float32)
    v64, U64 = v32.astype(np.float64), U32.astype(np.float64)
    # the same weights in both precisions
    theta64 = theta32.astype(np.float64)
    for mode in MODES:
        G32 = obj32.gauss_newton(theta32, mode=mode)
        G64 = obj64.gauss_newton(theta64, mode=mode)
        assert G32.dtype == np.float32
        Gv = G32 @ v32
        assert Gv.dtype == np.float32
        assert _rel(Gv, G64 @ v64) < 1e-5
        assert _rel(G32.jvp(v32), G64.jvp(v64)) < 1e-5
        assert _rel(G32.vjp(U32), G64.vjp(U64)) < 1e-5


def test_float32_worked_check():
    ex, net, obj, theta = worked_problem("float32")
    g = obj.grad(theta)
    for mode in MODES:
        G = obj.gauss_newton(theta, mode=mode)
        gd = g.astype(np.float64)
        value = gd @ (G @ g).astype(np.float64) - gd @ gd / (ex["C"] * ex["X"].shape[0])
        assert value == pytest.approx(230346.180998504, rel=1e-5)


# ---------------------------------------------------------------- modes, memory and API
@pytest.fixture
def small():
    net, X, y, theta = _problem("pad1-pool2", "softmax")
    return net, CNNObjective(net, X, y, C=0.5), theta


def test_auto_mode_resolves_to_a_setting(small):
    net, obj, theta = small
    G = obj.gauss_newton(theta)   # mode="auto" by default
    assert G.mode in ("jacobian", "rop")
    assert obj.gauss_newton(theta, mode="auto").mode in ("jacobian", "rop")
    v = np.random.default_rng(9).standard_normal(net.n_params)
    ref = obj.gauss_newton(theta, mode="rop") @ v
    assert _rel(G @ v, ref) <= EXACT


def test_zero_memory_budget_means_rop(small):
    net, obj, theta = small
    G = obj.gauss_newton(theta, mode="auto", memory_budget=0)
    assert G.mode == "rop"
    # recomputing the forward pass per product gives the same products
    v = np.random.default_rng(10).standard_normal(net.n_params)
    kept = obj.gauss_newton(theta, mode="rop")
    assert _rel(G @ v, kept @ v) <= EXACT
    assert _rel(obj.gauss_newton(theta, mode="rop", memory_budget=0) @ v, kept @ v) <= EXACT


@pytest.mark.parametrize("loss", LOSSES)
def test_rop_keeping_nothing_holds_memory_independent_of_the_subset_size(loss):
    # memory_budget=0: the R-op setting keeps no forward pass, so what the operator holds
    # (traced by tracemalloc, which sees numpy's allocations) must not grow with |S|
    import tracemalloc
    net, X, y, theta = _problem("pad1-pool2", loss, n=400, seed=3)
    obj = CNNObjective(net, X, y, C=0.5, batch_size=20)
    v = np.random.default_rng(4).standard_normal(net.n_params)
    held = {}
    for size in (40, 400):
        subset = np.arange(size)
        obj.gauss_newton(theta, subset=subset, mode="rop", memory_budget=0) @ v  # warm buffers
        obj.array_pool.clear()   # nothing handed on from earlier operators
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        G = obj.gauss_newton(theta, subset=subset, mode="rop", memory_budget=0)
        G @ v
        held[size] = tracemalloc.get_traced_memory()[0] - before
        tracemalloc.stop()
        assert G.nbytes <= size * (X[0].nbytes + 8 * net.n_classes)   # the batches and B_i only
        del G
    # 10x the instances: the extra memory is the subset's images and B_i (~0.5 KB each)
    per_instance = X[0].nbytes + 8 * net.n_classes + 64
    assert held[400] - held[40] <= 360 * per_instance, held


def test_jacobian_mode_over_budget_raises_memory_error(small):
    net, obj, theta = small
    with pytest.raises(MemoryError, match=r"(?s)memory_budget.*rop"):
        obj.gauss_newton(theta, mode="jacobian", memory_budget=10)
    G = obj.gauss_newton(theta, mode="jacobian")
    assert G.mode == "jacobian" and G.nbytes > 0


@pytest.mark.parametrize("mode", ["Jacobian", "backward", "", None, "ROP"])
def test_unknown_mode_is_rejected(small, mode):
    net, obj, theta = small
    with pytest.raises(ValueError, match=r"mode"):
        obj.gauss_newton(theta, mode=mode)


def test_negative_memory_budget_is_rejected(small):
    net, obj, theta = small
    with pytest.raises(ValueError, match=r"memory_budget"):
        obj.gauss_newton(theta, memory_budget=-1)


@pytest.mark.parametrize("mode", MODES)
def test_wrong_shapes_are_rejected(small, mode):
    net, obj, theta = small
    P, K = net.n_params, net.n_classes
    G = obj.gauss_newton(theta, subset=np.array([0, 2, 4, 5]), mode=mode)   # |S| = 4 ≠ K
    for bad in (np.ones(P + 1), np.ones(P - 1), np.ones((P, 2)), np.ones((1, P))):
        with pytest.raises(ValueError, match=r"v must have shape"):
            G.jvp(bad)
    for bad in (np.ones(P + 1), np.ones(P - 1), np.ones((2, P))):
        with pytest.raises(ValueError):
            G @ bad
    assert K != 4
    for bad in (np.ones((4, K + 1)), np.ones((3, K)), np.ones((N, K)), np.ones(4 * K),
                np.ones((K, 4)), np.ones((4, K, 1))):
        with pytest.raises(ValueError, match=r"U must have shape"):
            G.vjp(bad)


@pytest.mark.parametrize("subset", [np.array([0, N]), np.array([-1, 2]), np.array([N + 5])])
def test_subset_out_of_range_is_rejected(small, subset):
    net, obj, theta = small
    with pytest.raises(ValueError, match=r"subset"):
        obj.gauss_newton(theta, subset=subset)


@pytest.mark.parametrize("mode", MODES)
def test_adjoint_transpose_dtype_and_product_count(small, mode):
    net, obj, theta = small
    G = obj.gauss_newton(theta, mode=mode)
    assert G.shape == (net.n_params, net.n_params)
    assert G.dtype == np.float64 == net.dtype
    assert isinstance(G.nbytes, (int, np.integer)) and G.nbytes >= 0
    assert G.n_products == 0
    v = np.random.default_rng(11).standard_normal(net.n_params)
    Gv = G @ v
    assert Gv.dtype == np.float64 and Gv.shape == v.shape
    assert G.n_products == 1
    assert _rel(G.H @ v, Gv) <= 1e-14
    assert _rel(G.T @ v, Gv) <= 1e-14
    assert _rel(G @ v[:, None], Gv[:, None]) <= 1e-14
    assert G.n_products == 4
    G @ np.ones((net.n_params, 3))   # a block of three products
    assert G.n_products == 7
    G.jvp(v)
    G.vjp(np.ones((N, net.n_classes)))
    net32 = CNN(*ARCHS["pad1-pool2"], loss="softmax", dtype="float32")
    obj32 = CNNObjective(net32, obj.X, obj.y, C=0.5)
    G32 = obj32.gauss_newton(theta.astype(np.float32), mode=mode)
    assert G32.dtype == np.float32
    assert G32.jvp(v).dtype == np.float32
    assert G32.vjp(np.ones((N, net.n_classes))).dtype == np.float32


def test_next_operator_reuses_the_memory_of_a_collected_one():
    """An operator's stored blocks go back to the objective's pool when it is collected,
    and the next operator of the same shapes is built in them, with the same products."""
    import gc
    net = CNN((1, 8, 8), [Conv(3, 3, padding=1), MaxPool(2), Dense(3)], dtype="float64")
    rng = np.random.default_rng(5)
    X, y = rng.standard_normal((6, 1, 8, 8)), rng.integers(0, 3, 6)
    obj = CNNObjective(net, X, y, C=0.5)
    theta = net.init_params(1)
    v = rng.standard_normal(net.n_params)
    G = obj.gauss_newton(theta, mode="jacobian")
    first = G @ v
    block_ids = {id(a) for a in G._owned}
    del G
    gc.collect()
    assert obj.array_pool.nbytes > 0
    G2 = obj.gauss_newton(theta, mode="jacobian")
    assert {id(a) for a in G2._owned} == block_ids
    assert obj.array_pool.nbytes == 0
    np.testing.assert_array_equal(G2 @ v, first)
    obj.array_pool.clear()
    assert obj.array_pool.nbytes == 0


def test_auto_mode_follows_the_cost_model_not_the_clock():
    """"auto" is decided by product_costs (deterministic): the paper's network with K = 10
    stores its Jacobian once the products would have paid for it; with K = 200 outputs the
    stored blocks cost more than the R-op, so it never does."""
    from newtoncnn.gauss_newton import product_costs, switch_after
    rng = np.random.default_rng(0)
    for K, expected in ((10, "jacobian"), (200, "rop")):
        net = newtoncnn.paper_network((1, 12, 12), K, dtype="float64")
        jacobian_cost, rop_cost = product_costs(net)
        assert (jacobian_cost <= rop_cost) == (expected == "jacobian")
        obj = CNNObjective(net, rng.standard_normal((4, 1, 12, 12)), rng.integers(0, K, 4))
        G = obj.gauss_newton(net.init_params(0), mode="auto")
        assert G.mode == "rop" and G.switch_at == switch_after(net)
        for _ in range(12):
            G @ rng.standard_normal(net.n_params)
        assert G.mode == expected


def test_switch_after_is_the_ski_rental_break_even():
    """n* is the first product count at which n (rop - jacobian) covers the extra build:
    with the model's own numbers (independent arithmetic), n* - 1 products do not."""
    from newtoncnn.gauss_newton import (FLOPS_PER_BYTE, forward_bytes_per_instance,
                                        product_costs, switch_after)
    from newtoncnn.jacobian import jacobian_bytes_per_instance
    net = newtoncnn.paper_network((1, 28, 28), 10)
    jac, rop = product_costs(net)
    flops = [g.flops(1) for g in net.geometry]
    build = 10 * (sum(flops) - flops[0]) + FLOPS_PER_BYTE * (
        jacobian_bytes_per_instance(net) - forward_bytes_per_instance(net))
    n = switch_after(net)
    assert n * (rop - jac) >= build > (n - 1) * (rop - jac)


@pytest.mark.parametrize("loss", LOSSES)
def test_auto_switch_keeps_the_products(loss):
    """Products before and after the switch equal the R-op setting's (float64)."""
    rng = np.random.default_rng(2)
    net = newtoncnn.paper_network((1, 12, 12), 10, loss=loss, dtype="float64")
    X, y, theta = rng.standard_normal((5, 1, 12, 12)), rng.integers(0, 10, 5), net.init_params(1)
    obj = CNNObjective(net, X, y, C=0.5, batch_size=3)
    G = obj.gauss_newton(theta, mode="auto")
    ref = obj.gauss_newton(theta, mode="rop")
    rng = np.random.default_rng(3)
    modes = []
    for _ in range(G.switch_at + 2):
        v = rng.standard_normal(net.n_params)
        assert _rel(G @ v, ref @ v) <= EXACT
        modes.append(G.mode)
    assert modes[0] == "rop" and modes[-1] == "jacobian"


def test_pool_holds_at_most_one_operator_whatever_the_shapes():
    """Operators over subsets of changing size (so changing chunk shapes) must not pile
    their arrays up in the pool: it holds the last collected operator's at most, and
    the memory numpy holds (tracemalloc) does not grow with the number of operators."""
    import tracemalloc
    net = CNN((1, 8, 8), [Conv(3, 3, padding=1), MaxPool(2), Dense(3)], dtype="float64")
    rng = np.random.default_rng(6)
    X, y = rng.standard_normal((160, 1, 8, 8)), rng.integers(0, 3, 160)
    obj = CNNObjective(net, X, y, C=0.5, batch_size=64)
    theta = net.init_params(2)
    largest = 0
    tracemalloc.start()
    try:
        for i in range(10):
            G = obj.gauss_newton(theta, subset=np.arange(100 + 5 * i), mode="jacobian")
            largest = max(largest, sum(a.nbytes for a in G._owned))
            del G   # no reference cycle: freed (and its arrays given back) here
            assert 0 < obj.array_pool.nbytes <= largest
            if i == 2:
                early, _ = tracemalloc.get_traced_memory()
        late, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert late - early < largest


# ---------------------------------------------------------------- the diagonal estimate
@pytest.mark.parametrize("loss", LOSSES)
def test_curvature_factor_times_its_transpose_is_the_loss_hessian(loss):
    net, X, y, theta = _problem("pad1-pool2", loss)
    z = net.forward(theta, X)
    obj = CNNObjective(net, X, y)
    state = obj.loss.curvature_state(z)
    K = net.n_classes
    # column k of L_i is L_i e_k: L_i L_iᵀ = Σ_k (L_i e_k)(L_i e_k)ᵀ
    cols = [obj.loss.curvature_factor_product(state, np.tile(np.eye(K)[k], (len(z), 1)))
            for k in range(K)]
    LLt = sum(np.einsum("ia,ib->iab", c, c) for c in cols)
    np.testing.assert_allclose(LLt, _loss_hessians(loss, z), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("name", ["pool-drops-two-convs-three-dense", "stride2-pad2-pool3-drops"])
def test_curvature_samples_of_unit_signs_sum_to_the_data_term(name, loss, mode):
    # r(σ) = Σ_i J_iᵀ L_i σ_i is linear in σ: over the unit σ = e_(i,k),
    # Σ r rᵀ = Σ_i J_iᵀ L_i L_iᵀ J_i = Σ_i J_iᵀ B_i J_i, the explicit matrix's data term
    net, X, y, theta, J = _fd_jacobian(name, loss)
    B = _loss_hessians(loss, net.forward(theta, X))
    subset = np.array([5, 1, 3, 1])
    G = CNNObjective(net, X, y, C=1.0, batch_size=3).gauss_newton(theta, subset=subset,
                                                                   mode=mode)
    K, P = net.n_classes, net.n_params
    total = np.zeros((P, P))
    for i in range(len(subset)):
        for k in range(K):
            sigma = np.zeros((len(subset), K))
            sigma[i, k] = 1.0
            r = G.curvature_sample(sigma)
            total += np.outer(r, r)
    expected = sum(J[i].T @ B[i] @ J[i] for i in subset)
    assert _rel(total, expected) < FD_RTOL


@pytest.mark.parametrize("loss", LOSSES)
def test_diagonal_estimate_is_unbiased(loss):
    net, X, y, theta, J = _fd_jacobian("pad1-pool2", loss)
    B = _loss_hessians(loss, net.forward(theta, X))
    C, l = 1.0, X.shape[0]
    G = CNNObjective(net, X, y, C=C).gauss_newton(theta, mode="jacobian")
    exact = np.diag(_explicit_gauss_newton(J, B, np.arange(l), C, l))
    n = 2000
    d = G.diagonal_estimate(n, np.random.default_rng(0))
    assert d.dtype == np.float64 and d.shape == exact.shape
    # each draw's r_j² has mean exact_j − reg and a standard deviation of at most
    # √2 (exact_j − reg): the mean of n draws is within 5 of its standard errors
    data = exact - 1.0 / (C * l)
    assert np.all(np.abs(d - exact) <= 5 * np.sqrt(2.0 / n) * data + 1e-12)
    # a fixed generator gives a fixed estimate
    np.testing.assert_array_equal(G.diagonal_estimate(3, np.random.default_rng(1)),
                                  G.diagonal_estimate(3, np.random.default_rng(1)))


def test_curvature_sample_rejects_a_wrong_shape():
    net, X, y, theta = _problem("pad1-pool2")
    G = CNNObjective(net, X, y).gauss_newton(theta, subset=np.array([0, 2]))
    with pytest.raises(ValueError, match=r"sigma must have shape \(2, 3\)"):
        G.curvature_sample(np.ones((3, 3)))


def test_newton_with_the_diagonal_preconditioner_descends_reproducibly():
    net, X, y, theta = _problem("pool-drops-two-convs-three-dense", "softmax", n=40)
    obj = CNNObjective(net, X, y)

    def run(**kw):
        return newtoncnn.NewtonCG(max_iter=6, subsample=0.5, random_state=0, **kw).minimize(
            obj, theta)

    a, b, plain = run(cg_diag_samples=2), run(cg_diag_samples=2), run()
    np.testing.assert_array_equal(a.x, b.x)
    fs = [row["f"] for row in a.history]
    assert fs[-1] < obj.fun(theta) and all(f2 <= f1 for f1, f2 in zip(fs, fs[1:]))
    assert not np.array_equal(a.x, plain.x)   # the option does change the path


def test_newton_with_the_diagonal_preconditioner_resumes_on_the_same_trajectory(tmp_path):
    # the signs of iteration k come from k: a resumed run draws the ones it would have
    net, X, y, theta = _problem("pad1-pool2", "softmax", n=30)
    obj = CNNObjective(net, X, y)
    kw = dict(subsample=0.5, random_state=2, cg_diag_samples=1, gtol=0.0)
    full = newtoncnn.NewtonCG(max_iter=5, **kw).minimize(obj, theta)
    path = tmp_path / "ck.npz"
    newtoncnn.NewtonCG(max_iter=2, checkpoint=path, **kw).minimize(obj, theta)
    res = newtoncnn.NewtonCG(max_iter=5, checkpoint=path, **kw).minimize(obj, None, resume=path)
    np.testing.assert_array_equal(res.x, full.x)
    assert [r["cg_iters"] for r in res.history] == [r["cg_iters"] for r in full.history]
    with pytest.raises(ValueError, match="cg_diag_samples"):
        newtoncnn.NewtonCG(max_iter=5, **{**kw, "cg_diag_samples": 2}).minimize(
            obj, None, resume=path)
