"""No input drives a C kernel out of its buffers: every size reaching C is checked in
Python's integers at the Cython boundary (a ValueError naming it, never an int that
wraps around, an ``OverflowError`` or a crash), and so are the offsets the kernels
follow (index maps, pool argmax) and the workspace buffers they write.

A wrong size used to crash the interpreter, so each case runs in a child process: a
crash fails its case instead of the test session.
"""
import json
import math
import textwrap
import types

import numpy as np
import pytest

import newtoncnn
from newtoncnn import CNN, CNNObjective, Conv, Dense, MaxPool, _kernels
from newtoncnn.layers import ConvGeometry
from newtoncnn.validation import check_int, check_real

from cases import run_python

BIG = 2**31
INT_MAX = BIG - 1

# Each case: (name, code run in the child; must raise ValueError whose message matches).
_SETUP = """
import numpy as np
from numpy.lib.stride_tricks import as_strided
from types import SimpleNamespace
from newtoncnn import _kernels, passes
from newtoncnn.layers import ConvGeometry
x = np.ones((1, 1, 1, 1), "f4")

def layer(stride=1, pad=1, kernel=3, pool=2, dtype="f4", n=3):
    g = ConvGeometry(2, 6, 6, 3, kernel, stride, pad, pool)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n, 2, 6, 6)).astype(dtype)
    Wa = rng.standard_normal((3, g.fan_in + 1)).astype(dtype)
    idx = _kernels.im2col_index(kernel, kernel, stride, g.padded_h, g.padded_w, pool=pool)
    ws = _kernels.Workspace()
    Z, am = _kernels.forward(g, X, Wa, idx, 2, ws)
    return g, X, Wa, idx, ws, Z, am

def bad_argmax(am, value):
    am = am.copy()
    am[-1, -1, -1, -1] = value
    return am
"""

CASES = [
    # the example: C * k * k wrapped around in a C int, a tiny buffer passed
    ("im2col_same_kernel_rows", "_kernels.im2col_same(x, 32768)", "phi rows"),
    ("im2col_same_padding", "_kernels.im2col_same(x, 2**31)", "padding p"),
    ("im2col_same_big_plane",
     "_kernels.im2col_same(as_strided(x, (1, 1, 2**16, 2**16), (2**34, 2**34, 2**18, 4)), 0)",
     "plane"),
    ("pad_padding", "_kernels.pad(x, 2**31)", "padding p"),
    ("pad_padded_size", "_kernels.pad(x, 2**30)", "padded"),
    ("crop_padding", "_kernels.crop(x, 2**31)", "padding p"),
    ("im2col_index_plane", "_kernels.im2col_index(1, 1, 1, 2**16, 2**16)", "plane"),
    ("im2col_index_stride", "_kernels.im2col_index(1, 1, 2**31, 4, 4)", "stride"),
    ("col2im_channels",
     "_kernels.col2im(np.zeros((4, 4)), _kernels.im2col_index(2, 2, 1, 3, 3), 2**31, 3, 3)", "C must be"),
    ("col2im_plane",
     "_kernels.col2im(np.zeros((4, 4)), _kernels.im2col_index(2, 2, 1, 3, 3), 1, 2**16, 2**16)",
     "plane"),
    ("col2im_same_channels", "_kernels.col2im_same(np.zeros((5, 1)), 2**31, 1, 1, 1)", "C must be"),
    # C * 9 = 2**32 + 5 wrapped to the 5 rows of phi
    ("col2im_same_wrapped_rows", "_kernels.col2im_same(np.zeros((5, 1)), 477218589, 1, 1, 1)",
     "phi"),
    ("col2im_same_plane", "_kernels.col2im_same(np.zeros((9, 1)), 1, 2**16, 2**16, 1)", "plane"),
    ("maxpool_size", "_kernels.maxpool(x, 2**31)", "pool size"),
    ("pool_scatter_height",
     "_kernels.pool_scatter(x, np.zeros((1, 1, 1, 1), np.int32), 2**31, 1)", "H must be"),
    ("pool_scatter_plane",
     "_kernels.pool_scatter(x, np.zeros((1, 1, 1, 1), np.int32), 2**16, 2**16)", "plane"),
    ("set_num_threads", "_kernels.set_num_threads(2**31)", "n_threads"),
    ("gemm_inner_size",
     "_kernels.gemm(as_strided(x, (1, 2**31), (0, 4)), as_strided(x, (2**31, 1), (4, 4)), "
     "np.zeros((1, 1), 'f4'))", "K"),
    ("gemm_row_stride",
     "_kernels.gemm(as_strided(x, (2, 1), (2**34, 4)), np.ones((1, 1), 'f4'), np.zeros((2, 1), 'f4'))",
     "row stride of A"),
    # a conv layer whose sizes overflow: the pass refuses it before touching X
    ("conv_pass_plane",
     "_kernels.forward(ConvGeometry(1, 2**16, 2**16, 1, 1, 1, 0, 1), "
     "np.zeros((0, 1, 2**16, 2**16), 'f4'), np.zeros((1, 2), 'f4'), np.zeros((1, 1), np.int32), 1, "
     "_kernels.Workspace())", "plane"),
    # index maps and pool offsets are followed by the kernels: checked before use
    ("conv_pass_short_index_map",
     "g, X, Wa, idx, ws, Z, am = layer(stride=2, pool=1)\n"
     "_kernels.forward(g, X, Wa, idx[:1, :1].copy(), 2, ws)", "index map"),
    ("conv_pass_index_out_of_plane",
     "g, X, Wa, idx, ws, Z, am = layer(stride=2, pool=1)\n"
     "idx = idx.copy(); idx[-1, -1] = 10**9\n"
     "_kernels.forward(g, X, Wa, idx, 2, ws)", "index map"),
    ("backward_argmax",
     "g, X, Wa, idx, ws, Z, am = layer()\n"
     "_kernels.backward(g, X, np.ones_like(Z), Z, bad_argmax(am, -10**9), Wa, idx, 2, ws, "
     "np.zeros_like(Wa))", "argmax"),
    ("rop_argmax",
     "g, X, Wa, idx, ws, Z, am = layer()\n"
     "_kernels.rop(g, X, X, Z, bad_argmax(am, 10**9), Wa, Wa, idx, 2, ws)", "argmax"),
    ("jacobian_jvp_argmax",
     "g, X, Wa, idx, ws, Z, am = layer()\n"
     "J = np.ones((3, 2, 3, g.out_h * g.out_w), 'f4')\n"
     "_kernels.jacobian_jvp(g, X, J, bad_argmax(am, -10**9), Wa, idx, 2, ws, np.zeros((3, 2), 'f4'))",
     "argmax"),
    ("jacobian_vjp_argmax",
     "g, X, Wa, idx, ws, Z, am = layer()\n"
     "J = np.ones((3, 2, 3, g.out_h * g.out_w), 'f4')\n"
     "_kernels.jacobian_vjp(g, X, J, bad_argmax(am, 10**9), np.ones((3, 2), 'f4'), idx, 2, ws, "
     "np.zeros_like(Wa))", "argmax"),
    # a workspace handing out buffers smaller than the pass writes
    ("conv_pass_small_workspace",
     "g, X, Wa, idx, ws, Z, am = layer()\n"
     "class Tiny(_kernels.Workspace):\n"
     "    def get(self, name, n_threads, size, dtype):\n"
     "        return np.empty((n_threads, 1), dtype)\n"
     "_kernels.forward(g, X, Wa, idx, 2, Tiny())", "workspace buffer"),
]


def _run_cases(cases):
    """Run each case in one child process; returns {name: (exception type, message)}."""
    script = _SETUP + textwrap.dedent("""
        import json, sys
        for name, code in json.loads(sys.argv[1]):
            try:
                exec(code)
                result = ["none", ""]
            except BaseException as e:
                result = [type(e).__name__, str(e)]
            print("@@" + json.dumps([name] + result), flush=True)
    """)
    out = run_python("-c", script, json.dumps([c[:2] for c in cases]), timeout=600)
    results = {}
    for line in out.stdout.splitlines():
        if not line.startswith("@@"):   # BLAS's own complaints, say
            continue
        name, kind, message = json.loads(line[2:])
        results[name] = (kind, message)
    return results, out


@pytest.fixture(scope="module")
def case_results():
    # one child for all cases (a crash is reported as the cases left without a result)
    return _run_cases(CASES)


@pytest.mark.parametrize("name, code, match", CASES, ids=[c[0] for c in CASES])
def test_kernel_boundary_refuses_with_value_error(case_results, name, code, match):
    results, out = case_results
    if name not in results:
        # the child died at an earlier case or at this one: rerun this one alone
        results, out = _run_cases([(name, code, match)])
    assert name in results, (f"the child process died (return code {out.returncode}) "
                             f"running {name}: {out.stderr[-2000:]}")
    kind, message = results[name]
    assert kind == "ValueError", f"{name}: {kind}: {message}"
    assert match in message, f"{name}: {message!r} does not mention {match!r}"


def test_kernel_boundary_accepts_sizes_up_to_int_max():
    # the bound is INT_MAX itself, not something smaller: the largest index map that
    # fits and a pool of size INT_MAX rejected only for not fitting the map
    idx = _kernels.im2col_index(1, 1, 2**30, 1, 2**30)
    np.testing.assert_array_equal(idx, [[0]])
    with pytest.raises(ValueError, match="does not fit"):
        _kernels.maxpool(np.ones((1, 1, 2, 2)), INT_MAX)


# ---------------------------------------------------------------- layers and networks
@pytest.mark.parametrize("make, match", [
    (lambda: Conv(4, 3, stride=BIG), "Conv stride"),
    (lambda: Conv(BIG, 3), "Conv filters"),
    (lambda: Conv(4, BIG), "Conv kernel_size"),
    (lambda: Conv(4, 3, padding=BIG), "Conv padding"),
    (lambda: MaxPool(BIG), "MaxPool pool_size"),
    (lambda: Dense(BIG), "Dense units"),
    (lambda: CNN((1, BIG, 8), [Dense(2)]), r"input_shape\[1\]"),
    # each size fits, their products do not
    (lambda: CNN((1, 2**16, 2**16), [Conv(1, 1), Dense(2)]), "padded_plane"),
    (lambda: CNN((2**20, 8, 8), [Conv(2**12, 3, padding=1), Dense(2)]), "n_params"),
    (lambda: CNN((1, 2**15, 2**15), [Conv(4, 1, padding=2**14), Dense(2)]), "padded"),
    (lambda: CNN((4, 2**15, 2**15), [Conv(2, 1), Dense(2)]), "input_size"),
    (lambda: CNN((1, 2**15, 2**14), [Conv(2**5, 1), Dense(2)]), "output_size"),
    (lambda: CNN((1, 8, 8), [Dense(2**20), Dense(2**12)]), "n_params"),
], ids=["stride", "filters", "kernel", "padding", "pool", "units", "input", "plane",
        "huge_filters", "padded_side", "input_size", "output_size", "dense_params"])
def test_layer_sizes_beyond_a_c_int_are_value_errors(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_conv_stride_beyond_a_c_int_never_reaches_a_pass():
    # main accepted the stride and failed with OverflowError in the first forward pass
    with pytest.raises(ValueError, match="Conv stride must be <= 2147483647"):
        net = CNN((1, 8, 8), [Conv(2, 3, stride=BIG), Dense(2)])
        net.forward(net.init_params(0), np.zeros((2, 1, 8, 8)))


# ---------------------------------------------------------------- the checkers (item 13)
def test_check_int_bounds_every_integer_by_int_max():
    assert check_int("n", INT_MAX) == INT_MAX
    with pytest.raises(ValueError, match=r"n must be <= 2147483647, got 2147483648"):
        check_int("n", BIG)
    with pytest.raises(ValueError, match="n must be <= 2147483647"):
        check_int("n", np.int64(2**40))


def test_check_real_refuses_integers_beyond_floats_range():
    with pytest.raises(ValueError, match="x must be finite"):
        check_real("x", 10**400)


@pytest.mark.parametrize("value", [BIG, 10**30])
def test_set_num_threads_beyond_a_c_int_is_a_value_error(value, restore_threads):
    with pytest.raises(ValueError, match="n_threads must be a positive integer of at most"):
        newtoncnn.set_num_threads(value)


@pytest.fixture
def restore_threads():
    before = newtoncnn.get_num_threads()
    yield
    newtoncnn.set_num_threads(before)


@pytest.mark.parametrize("budget", [math.inf, -math.inf, math.nan, 10**400, "1e9"])
def test_gauss_newton_memory_budget_must_be_finite(budget):
    net = CNN((1, 6, 6), [Conv(2, 3), Dense(2)], dtype="float64")
    X = np.random.default_rng(0).standard_normal((4, 1, 6, 6))
    obj = CNNObjective(net, X, np.array([0, 1, 0, 1]))
    with pytest.raises(ValueError, match="memory_budget"):
        obj.gauss_newton(net.init_params(0), memory_budget=budget)


def test_cli_threads_beyond_a_c_int_is_a_one_line_usage_error():
    out = run_python("-m", "newtoncnn", "train", "--threads", "3000000000", "--max-iter", "1")
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr
    assert "--threads" in out.stderr and "2147483647" in out.stderr


def test_estimator_n_threads_beyond_a_c_int_is_a_value_error():
    from newtoncnn.estimator import CNNClassifier
    X = np.random.default_rng(0).standard_normal((4, 1, 6, 6))
    with pytest.raises(ValueError, match="n_threads"):
        CNNClassifier(layers=[Conv(2, 3)], n_threads=BIG, max_iter=1).fit(X, [0, 1, 0, 1])


def test_conv_passes_recompute_the_derived_sizes_of_a_geometry():
    # the kernels read a geometry's defining sizes only: derived ones that lie (main
    # trusted conv_h and friends) change nothing
    g = ConvGeometry(2, 6, 6, 3, 3, 1, 1, 2)
    lie = types.SimpleNamespace(**{k: getattr(g, k) for k in (
        "in_c", "in_h", "in_w", "out_c", "kernel", "stride", "padding", "pool")},
        conv_h=10**6, conv_w=10**6, out_h=10**6, out_w=10**6, fan_in=1, taps=1)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((3, 2, 6, 6))
    Wa = rng.standard_normal((3, g.fan_in + 1))
    idx = _kernels.im2col_index(3, 3, 1, 8, 8)
    Z, am = _kernels.forward(g, X, Wa, idx, 2, _kernels.Workspace())
    Z2, am2 = _kernels.forward(lie, X, Wa, idx, 2, _kernels.Workspace())
    np.testing.assert_array_equal(Z2, Z)
    np.testing.assert_array_equal(am2, am)
