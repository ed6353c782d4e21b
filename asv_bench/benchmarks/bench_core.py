"""Core benchmarks: the paper's CNN on the bundled Fashion-MNIST subset.

Forward pass, f + gradient, the Gauss-Newton operator (build and one product
in both settings) and one CG iteration, for n instances in one batch.  The
comparison with PyTorch lives in ``asv_bench/peer_benchmark.py``.

Each class's ``setup`` builds only what its benchmarks need; the
Gauss-Newton classes skip (``NotImplementedError`` in ``setup``) when
``CNNObjective.gauss_newton`` is not available.
"""
import numpy as np

import newtoncnn

#: Numbers of instances; add 3000 for the paper-sized subsample (slower: the
#: Jacobian setting then holds about 1.4 GB).
SIZES = [600]
C_REG = 0.01


def make_problem(n, dtype="float32"):
    """(net, θ, X, obj) for the paper's network on n normalized images."""
    net = newtoncnn.paper_network((1, 28, 28), 10, loss="squared", dtype=dtype)
    theta = net.init_params(0)
    try:
        from newtoncnn.datasets import Normalizer, load_bundled
        data = load_bundled()
        reps = -(-n // data.X_train.shape[0])
        X = Normalizer(dtype=dtype).fit_transform(np.concatenate([data.X_train] * reps)[:n])
        y = np.concatenate([data.y_train] * reps)[:n]
    except (ImportError, FileNotFoundError, AttributeError):
        rng = np.random.default_rng(0)
        X = rng.standard_normal((n, 1, 28, 28)).astype(dtype)
        y = rng.integers(0, 10, n)
    obj = newtoncnn.CNNObjective(net, X, y, C=C_REG, batch_size=n)
    return net, theta, X, obj


def build_gauss_newton(obj, theta, mode):
    """``obj.gauss_newton(θ, mode=mode)``, or NotImplementedError (asv: skip) if unavailable."""
    try:
        return obj.gauss_newton(theta, mode=mode)
    except (AttributeError, ImportError, NotImplementedError) as exc:
        raise NotImplementedError(f"gauss_newton(mode={mode!r}) unavailable: {exc}") from exc


class _Timed:
    """asv timing settings shared by the classes below: one call per sample (the
    operations take 30 ms to seconds), no warm-up beyond asv's own first call."""

    timeout = 600
    number = 1
    repeat = (1, 5, 30.0)
    warmup_time = 0.0


class Objective(_Timed):
    """Forward pass, f + gradient and building the Gauss-Newton operator."""

    params = [SIZES]
    param_names = ["n"]

    def setup(self, n):
        self.net, self.theta, self.X, self.obj = make_problem(n)

    def time_forward(self, n):
        self.net.forward(self.theta, self.X, batch_size=n)

    def peakmem_forward(self, n):
        self.net.forward(self.theta, self.X, batch_size=n)

    def time_fun_grad(self, n):
        self.obj.fun_grad(self.theta)

    def peakmem_fun_grad(self, n):
        self.obj.fun_grad(self.theta)

    def time_gauss_newton_build_jacobian(self, n):
        build_gauss_newton(self.obj, self.theta, "jacobian")

    def time_gauss_newton_build_rop(self, n):
        build_gauss_newton(self.obj, self.theta, "rop")


class _KernelChoice(_Timed):
    """Forward pass, f + gradient and one Jacobian-setting product (``self.G``) under a
    kernel choice made in ``setup``."""

    def time_forward(self, n, kernels):
        self.net.forward(self.theta, self.X, batch_size=n)

    def time_fun_grad(self, n, kernels):
        self.obj.fun_grad(self.theta)

    def time_gauss_newton_product_jacobian(self, n, kernels):
        self.G.matvec(self.v)


class Float32Kernels(_KernelChoice):
    """Forward pass, f + gradient and one Jacobian-setting product with newtoncnn's own
    float32 kernels (AVX-512 GEMM and 2x2 pool) against scipy's BLAS and the scalar pool:
    tracks what the native kernels buy on this machine."""

    params = [SIZES, ["native", "blas"]]
    param_names = ["n", "kernels"]

    def setup(self, n, kernels):
        from newtoncnn import _kernels
        if kernels == "native" and not _kernels.native_sgemm_available():
            raise NotImplementedError("the native float32 kernels need AVX-512F")
        self.before = (_kernels.set_gemm_engine(kernels), _kernels.set_simd(kernels == "native"))
        self.net, self.theta, self.X, self.obj = make_problem(n)
        self.G = build_gauss_newton(self.obj, self.theta, "jacobian")
        self.v = np.random.default_rng(1).standard_normal(self.G.shape[1]).astype(self.G.dtype)

    def teardown(self, n, kernels):
        from newtoncnn import _kernels
        _kernels.set_gemm_engine(self.before[0])
        _kernels.set_simd(self.before[1])


class FusedConvKernels(_KernelChoice):
    """Forward pass, f + gradient, Jacobian build and both products with the fused float32
    conv + pool kernels (``src_c/conv_avx2.c``) off (``gemm``: im2col + GEMM + pool), on
    with direct 3x3 convolutions (``direct``), and on with Winograd F(2x2, 3x3) (``winograd``,
    the default): tracks what each buys on this machine."""

    params = [SIZES, ["gemm", "direct", "winograd"]]
    param_names = ["n", "kernels"]

    def setup(self, n, kernels):
        from newtoncnn import _kernels
        if kernels != "gemm" and not _kernels.fused_conv_available():
            raise NotImplementedError("the fused conv kernels need AVX2 with FMA")
        self.before = (_kernels.set_fused_conv(kernels != "gemm"),
                       _kernels._set_winograd(kernels == "winograd"))
        self.net, self.theta, self.X, self.obj = make_problem(n)
        self.G = build_gauss_newton(self.obj, self.theta, "jacobian")
        self.Gr = build_gauss_newton(self.obj, self.theta, "rop")
        self.v = np.random.default_rng(1).standard_normal(self.G.shape[1]).astype(self.G.dtype)

    def teardown(self, n, kernels):
        from newtoncnn import _kernels
        _kernels.set_fused_conv(self.before[0])
        _kernels._set_winograd(self.before[1])

    def time_gauss_newton_build_jacobian(self, n, kernels):
        build_gauss_newton(self.obj, self.theta, "jacobian")

    def time_gauss_newton_product_rop(self, n, kernels):
        self.Gr.matvec(self.v)


class _GaussNewtonProduct(_Timed):
    """One product ``G @ v`` with an operator built in ``setup``, and one CG iteration."""

    mode = None
    params = [SIZES]
    param_names = ["n"]
    repeat = (1, 10, 30.0)

    def setup(self, n):
        net, theta, _, obj = make_problem(n)
        self.G = build_gauss_newton(obj, theta, self.mode)
        rng = np.random.default_rng(1)
        self.v = rng.standard_normal(net.n_params).astype(net.dtype)
        # CG state on (G + λI) s = −g after a few iterations: s, r, p, ‖r‖².
        self.damping = net.dtype.type(1.0)
        self.s = np.zeros(net.n_params, dtype=net.dtype)
        self.r = rng.standard_normal(net.n_params).astype(net.dtype)
        self.p = self.r.copy()
        self.rr = float(self.r.astype(np.float64) @ self.r.astype(np.float64))

    def _product(self):
        self.G @ self.v

    def time_cg_iteration(self, n):
        """One CG iteration: a product, two dot products (float64) and three axpys."""
        p = self.p
        Ap = self.G @ p
        Ap += self.damping * p
        alpha = self.rr / float(p.astype(np.float64) @ Ap.astype(np.float64))
        s = self.s + p.dtype.type(alpha) * p
        r = self.r - p.dtype.type(alpha) * Ap
        rr_new = float(r.astype(np.float64) @ r.astype(np.float64))
        p_new = r + p.dtype.type(rr_new / self.rr) * p
        return s, p_new


class GaussNewtonJacobian(_GaussNewtonProduct):
    """The Jacobian setting: ∂z/∂S^m stored once, each product a few GEMMs."""

    mode = "jacobian"

    def time_gauss_newton_product_jacobian(self, n):
        self._product()


class GaussNewtonRop(_GaussNewtonProduct):
    """The R-operator setting: J v forward and Jᵀu backward per product."""

    mode = "rop"

    def time_gauss_newton_product_rop(self, n):
        self._product()


class NewtonIteration:
    """One iteration of NewtonCG (simpleNN's defaults, 5 % subsample) on n instances."""

    params = SIZES
    param_names = ["n"]
    timeout = 600

    def setup(self, n):
        from newtoncnn.newton import NewtonCG
        self.net, self.theta, _, self.obj = make_problem(n)
        self.solver = NewtonCG(max_iter=1, random_state=0)

    def time_newton_iteration(self, n):
        self.solver.minimize(self.obj, self.theta)
