#!/usr/bin/env python
"""newtoncnn against PyTorch (and JAX) on the paper's CNN: one command, one table.

Usage::

    python asv_bench/peer_benchmark.py [--sizes 600 3000] [--threads 2] [--repeat 5]
                                       [--dtype float32] [--no-torch] [--markdown out.md]
                                       [--both-allocators] [--jax | --jax-only]

What it does (its latest table is in docs/benchmarks.rst):

1. Pins the thread count of both libraries (``newtoncnn.set_num_threads``:
   OpenMP kernels + BLAS through threadpoolctl; ``torch.set_num_threads``) and
   reports the BLAS / OpenMP libraries that are loaded and ``GLIBC_TUNABLES``.
2. Measures the machine's GEMM rate in the same run, through scipy's BLAS
   (``newtoncnn._kernels.gemm``): a 2048³ product and the conv-shaped products
   ``(out_c, fan_in) @ (fan_in, n·P)`` of the network for every n.
3. Builds the paper's network in both libraries with the same weights and the
   same data (the bundled Fashion-MNIST subset, normalized as simpleNN does,
   repeated if n exceeds it).
4. Checks in float64 that forward outputs, f, ∇f and G v agree to 1e-10
   (relative) and aborts if they do not.
5. Times (median of ``--repeat`` after one warm-up) forward, f + gradient,
   the Gauss-Newton operator build and one product ``G v``.
6. Runs every measurement (operation, n, library) in a fresh subprocess and
   reports its peak RSS (``VmHWM``; ``ru_maxrss`` cannot be used as is: Linux
   carries it over from the parent across fork + exec) together with the
   baseline, the RSS after imports, data and weights.  The peak is reset
   (``/proc/self/clear_refs``) after any per-measurement preparation, so a
   product's peak counts the resident operator but not the transient peak of
   building it.

Pairings of the table rows (newtoncnn / PyTorch):

* ``forward``: ``net.forward(θ, X, batch_size=n)`` | ``model(X)`` under no_grad.
* ``f + gradient``: ``obj.fun_grad(θ)`` | loss + ``loss.backward()`` (the
  gradient is left in ``p.grad``, not flattened).
* ``G build (jacobian)``: ``obj.gauss_newton(θ, mode="jacobian")`` |
  ``torch.func.linearize`` + ``torch.func.vjp`` of θ ↦ outputs (the state
  PyTorch keeps to reuse for many products).
* ``G build (rop)``: ``obj.gauss_newton(θ, mode="rop")`` | nothing to build.
* ``G v (jacobian)``: product with the built operator | product with the
  linearized jvp and the saved vjp (both reuse per-θ state).
* ``G v (rop)``: product with the built operator | ``torch.func.jvp`` then
  ``torch.func.vjp`` from scratch (both recompute the passes per product).
* ``G v (rop keeping nothing)``: the R-op setting with ``memory_budget=0`` in
  batches of 600: no forward pass is kept, each product recomputes it, and the
  memory does not grow with n (newtoncnn only).

In every case ``G v = v / (C l) + (1/n) Σ_i J_iᵀ B J_i v`` with B = 2I (the
squared loss) and S = all n instances (l = n).

FLOP counts (GEMM FLOPs only; F = ``net.forward_flops(n)`` = Σ_m 2 n out_m
fan_in_m P_m with P_m the used conv plane (the pixels the pool reads), F1 = the first
layer's share, K = classes):

* forward: F.
* f + gradient: forward F + weight-gradient GEMMs F + input-gradient GEMMs of
  every layer but the first (F − F1) = 3F − F1.
* G build (jacobian): forward F + backward of all K output seeds through the
  input-gradient GEMMs, K (F − F1).  (rop build: not counted.)
* G v (jacobian): V^m φ and U^m φᵀ per layer = 2F.  The contractions with the
  stored ∂z/∂S^m blocks (4 K Σ_m |S^m| per instance) are not counted.
* G v (rop): R-forward (V φ(Z): F, W φ(R Z): F − F1 since R{Z^1} = 0) +
  backward seeded with u (weight GEMMs F, input GEMMs F − F1) = 4F − 2F1.
  The primal forward pass at θ belongs to the build; an implementation that
  recomputes it per product does F more work than counted.
* G v (rop keeping nothing): the same plus that forward pass, 5F − 2F1.

GFLOP/s is reported for newtoncnn, next to the 2048³ GEMM rate ("of GEMM
peak") and to the rate of the network's own conv-shaped GEMMs at that n
("of conv GEMMs"), which is the practical ceiling.

PyTorch is allocator-sensitive: ``--both-allocators`` re-runs everything with
and without ``GLIBC_TUNABLES=glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=17179869184``
and prints both tables.

JAX (optional, ``--jax``: a section after the table; ``--jax-only``: that section
alone; the code is in ``jax_peer.py``) is measured differently: newtoncnn and JAX
run in one fresh process, and for every row and n their calls alternate for
``--repeat`` rounds (after JAX's compile and a warm-up call of each), so machine
noise hits both alike; medians, their ratio and the number of rounds newtoncnn
won are reported (no memory: the two share one process).  XLA CPU gets the
thread count through ``NPROC=N`` (with ``XLA_FLAGS=--xla_cpu_multi_thread_eigen=true
intra_op_parallelism_threads=N``, whose last token jaxlib 0.10 ignores), set
before jax is imported; the header reports the size of XLA's pool.  The JAX twin is
the network under ``jax.jit`` in NHWC / HWIO layouts (XLA CPU's fast path) with
newtoncnn's weights; before any timing it is checked against newtoncnn in
float64 (outputs, f, ∇f, J v and G v of both settings, 1e-10 relative), and the
run aborts if they disagree.  Without jax the section is skipped with a message.
Pairings (newtoncnn / JAX; the f and G v of ``TorchProblem``):

* ``forward``: ``net.forward`` | the jitted outputs.
* ``f + gradient``: ``obj.fun_grad(θ)`` | ``jax.jit(jax.value_and_grad(f))``.
* ``G build: jacobian / linearize+vjp``: ``obj.gauss_newton(θ, mode="jacobian")`` |
  ``jax.linearize`` of θ ↦ outputs under jit: the forward pass and the
  residuals, returned as a pytree (JAX's vjp is the transpose of that linear
  map, so nothing else is built).
* ``G v: jacobian / linearized jvp+vjp``: product with the built operator |
  the linearized jvp, then its ``jax.linear_transpose`` (reuse per-θ state).
* ``G v: rop / jvp+vjp``: product with the built R-op operator | ``jax.jvp`` then
  ``jax.vjp`` from scratch in one jitted function (XLA may merge the two
  primal passes).
"""
import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import warnings

import numpy as np

TUNED_GLIBC = "glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=17179869184"
C_REG = 0.01
GN_MODES = ("jacobian", "rop")
#: Exceptions meaning "newtoncnn's Gauss-Newton operator is not available (yet)".
GN_MISSING = (AttributeError, NotImplementedError, ImportError)
CHECK_N = 20
CHECK_RTOL = 1e-10


# ---------------------------------------------------------------------------
# Data, networks and the PyTorch twin
# ---------------------------------------------------------------------------

def make_network(dtype):
    """The paper's 3-layer CNN for 28×28 grey images, 10 classes, squared loss."""
    import newtoncnn
    return newtoncnn.paper_network((1, 28, 28), 10, loss="squared", dtype=dtype)


def load_data(n, dtype):
    """n normalized images ``(n, 1, 28, 28)``, labels 0..9, and a description.

    The bundled Fashion-MNIST training subset (5,000 images), normalized as
    simpleNN does (pixels / 255 minus the mean image), repeated when n is
    larger; N(0, 1) noise with random labels if the bundled data is missing.
    """
    try:
        from newtoncnn.datasets import Normalizer, load_bundled
        data = load_bundled()
        X_all = Normalizer(dtype=dtype).fit_transform(data.X_train)
        y_all = np.asarray(data.y_train, dtype=np.int64)
        reps = -(-n // X_all.shape[0])
        X = np.ascontiguousarray(np.concatenate([X_all] * reps)[:n])
        y = np.concatenate([y_all] * reps)[:n]
        source = f"bundled Fashion-MNIST ({X_all.shape[0]} train images" + \
            (", repeated)" if reps > 1 else ")")
    except (ImportError, FileNotFoundError, AttributeError) as exc:
        rng = np.random.default_rng(0)
        X = rng.standard_normal((n, 1, 28, 28)).astype(dtype)
        y = rng.integers(0, 10, n)
        source = f"N(0, 1) noise (bundled data unavailable: {exc})"
    return X, y, source


def torch_model(net, theta, torch_dtype):
    """The PyTorch twin of ``net`` (Conv2d/ReLU/MaxPool2d/Flatten/Linear) holding θ."""
    import torch
    from torch import nn
    from newtoncnn.layers import ConvGeometry

    modules, flat = [], False
    for g in net.geometry:
        if isinstance(g, ConvGeometry):
            modules += [nn.Conv2d(g.in_c, g.out_c, g.kernel, stride=g.stride, padding=g.padding),
                        nn.ReLU()]
            if g.pool > 1:
                modules.append(nn.MaxPool2d(g.pool))
        else:
            if not flat:
                modules.append(nn.Flatten())
                flat = True
            modules.append(nn.Linear(g.in_features, g.out_features))
            if g.relu:
                modules.append(nn.ReLU())
    model = nn.Sequential(*modules).to(torch_dtype)
    layers = [m for m in model if isinstance(m, (nn.Conv2d, nn.Linear))]
    with torch.no_grad():
        for layer, (W, b) in zip(layers, net.get_weights(theta)):
            layer.weight.copy_(torch.from_numpy(np.ascontiguousarray(W)))
            layer.bias.copy_(torch.from_numpy(np.ascontiguousarray(b)))
    return model


def torch_param_list(model):
    """[(W, b)] tensors of the Conv2d/Linear layers, in network order."""
    from torch import nn
    return [(m.weight, m.bias) for m in model if isinstance(m, (nn.Conv2d, nn.Linear))]


def torch_dict_from_flat(net, model, v):
    """A flat newtoncnn vector (θ layout) as a ``{name: tensor}`` dict for ``model``."""
    import torch
    names = [name for name, _ in model.named_parameters()]
    tensors = []
    for W, b in net.get_weights(v):
        tensors += [torch.from_numpy(np.ascontiguousarray(W)), torch.from_numpy(b)]
    return dict(zip(names, tensors))


def flat_from_torch(net, pairs):
    """Per-layer torch ``(W, b)`` tensors -> a flat vector in θ's layout."""
    return net.set_weights([(W.detach().numpy(), b.detach().numpy()) for W, b in pairs])


class TorchProblem:
    """The objective of docs/guide/objective.rst and its Gauss-Newton products in PyTorch.

    f = θᵀθ / (2 C l) + (1/l) Σ_i ‖z_i − onehot(y_i)‖², l = n;
    G v = v / (C l) + (1/n) Σ_i J_iᵀ (2I) J_i v, via ``torch.func``.
    """

    def __init__(self, net, theta, X, y, C=C_REG):
        import torch
        from torch.func import functional_call
        self.torch = torch
        dtype = torch.float64 if np.dtype(net.dtype) == np.float64 else torch.float32
        self.net = net
        self.model = torch_model(net, theta, dtype)
        self.X = torch.from_numpy(np.ascontiguousarray(X, dtype=net.dtype))
        self.Y = torch.nn.functional.one_hot(torch.from_numpy(np.asarray(y, dtype=np.int64)),
                                             net.n_classes).to(dtype)
        self.n = X.shape[0]
        self.reg = 1.0 / (C * self.n)
        self.params = {k: p.detach() for k, p in self.model.named_parameters()}
        self.outputs = lambda params: functional_call(self.model, params, (self.X,))

    def forward(self):
        """Outputs z (n, K) without autograd."""
        with self.torch.no_grad():
            return self.model(self.X)

    def fun_grad(self):
        """f; leaves ∇f in the parameters' ``.grad``."""
        self.model.zero_grad(set_to_none=True)
        z = self.model(self.X)
        reg = sum((p * p).sum() for p in self.model.parameters()) * (self.reg / 2.0)
        f = reg + ((z - self.Y) ** 2).sum() / self.n
        f.backward()
        return f.item()

    def _finish(self, v, Jv, vjp_fn):
        (g,) = vjp_fn(Jv * (2.0 / self.n))
        return {k: g[k] + self.reg * v[k] for k in g}

    def gn_product(self, v):
        """G v from scratch: ``torch.func.jvp`` then ``torch.func.vjp``."""
        from torch.func import jvp, vjp
        _, Jv = jvp(self.outputs, (self.params,), (v,))
        _, vjp_fn = vjp(self.outputs, self.params)
        return self._finish(v, Jv, vjp_fn)

    def gn_linearize(self):
        """Build once: ``torch.func.linearize`` (jvp) and ``torch.func.vjp``; returns v ↦ G v."""
        from torch.func import linearize, vjp
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _, jvp_fn = linearize(self.outputs, self.params)
        _, vjp_fn = vjp(self.outputs, self.params)
        return lambda v: self._finish(v, jvp_fn(v), vjp_fn)

    def jvp(self, v):
        """J v, (n, K)."""
        from torch.func import jvp
        return jvp(self.outputs, (self.params,), (v,))[1]

    def flat(self, tensors):
        """A ``{name: tensor}`` dict -> flat vector in θ's layout."""
        vals = [tensors[k] for k, _ in self.model.named_parameters()]
        return flat_from_torch(self.net, list(zip(vals[0::2], vals[1::2])))


# ---------------------------------------------------------------------------
# Measurement worker (runs in a fresh subprocess: ``--one SPEC``)
# ---------------------------------------------------------------------------

def _proc_status_mb(field):
    """``VmRSS``/``VmHWM`` of this process from /proc/self/status in MB (None if unavailable)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def rss_mb():
    """Resident set size now, in MB."""
    now = _proc_status_mb("VmRSS")
    return now if now is not None else peak_rss_mb()


def peak_rss_mb():
    """Peak resident set size of this process, in MB.

    ``VmHWM`` belongs to the address space, which ``exec`` replaces, whereas
    Linux carries ``ru_maxrss`` over from the parent across fork + exec (a
    worker would inherit its driver's peak), so ru_maxrss is only a fallback.
    """
    hwm = _proc_status_mb("VmHWM")
    return hwm if hwm is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def reset_peak_rss():
    """Reset VmHWM to the current RSS (Linux >= 4.0: write 5 to clear_refs); False if impossible."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def time_call(fn, repeat):
    """Seconds of ``repeat`` calls of fn after one warm-up; results are dropped
    outside the timed region (so a rebuilt operator never coexists with the last)."""
    out = fn()
    del out
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
        del out
    return times


def set_threads(threads, with_torch):
    """Pin newtoncnn's kernels and BLAS (and PyTorch's intra-op pool) to ``threads``."""
    import newtoncnn
    newtoncnn.set_num_threads(threads)
    if with_torch:
        import torch
        torch.set_num_threads(threads)


def blas_summary():
    """threadpoolctl's view of the loaded BLAS/OpenMP libraries, one line each."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return ["threadpoolctl not installed"]
    lines = []
    for lib in threadpool_info():
        desc = f"{lib.get('internal_api')} {lib.get('version') or ''}".strip()
        extra = [x for x in (lib.get("threading_layer"), lib.get("architecture")) if x]
        lines.append(f"{desc} ({os.path.basename(lib.get('filepath', ''))}"
                     f"{', ' + ', '.join(extra) if extra else ''}): {lib.get('num_threads')} threads")
    return lines


def torch_summary():
    """PyTorch's version, math libraries and thread counts."""
    import torch
    keep = ("ATen parallel backend", "at::get_num_threads", "Intel(R) oneAPI Math Kernel",
            "Intel(R) MKL-DNN", "OpenBLAS")
    lines = [f"torch {torch.__version__}"]
    for line in torch.__config__.parallel_info().splitlines():
        if line.strip().startswith(keep):
            lines.append(line.strip().split(" for Intel")[0])
    return lines


def worker_sgemm(spec):
    """GEMM rates (GFLOP/s) of a 2048³ product and the network's conv-shaped products."""
    from newtoncnn._kernels import gemm
    from newtoncnn.layers import ConvGeometry
    dtype, repeat = spec["dtype"], spec["repeat"]
    rng = np.random.default_rng(0)

    def rate(m, k, n_cols):
        A = rng.standard_normal((m, k)).astype(dtype)
        B = rng.standard_normal((k, n_cols)).astype(dtype)
        C = np.empty((m, n_cols), dtype=dtype)
        t = statistics.median(time_call(lambda: gemm(A, B, C), repeat))
        return 2.0 * m * k * n_cols, t

    flops, t = rate(2048, 2048, 2048)
    result = {"peak_gflops": flops / t / 1e9, "conv": {}}
    net = make_network(dtype)
    for n in spec["sizes"]:
        shapes, total_f, total_t = [], 0.0, 0.0
        for g in net.geometry:
            if isinstance(g, ConvGeometry):
                f, t = rate(g.out_c, g.fan_in, n * g.used_h * g.used_w)
                shapes.append({"shape": f"({g.out_c},{g.fan_in})@({g.fan_in},{n}*{g.used_h * g.used_w})",
                               "gflops": f / t / 1e9})
                total_f, total_t = total_f + f, total_t + t
        result["conv"][str(n)] = {"shapes": shapes, "gflops": total_f / total_t / 1e9}
    result["blas"] = blas_summary()
    return result


def newtoncnn_setup(spec):
    """(net, θ, X, y, obj, v) for one measurement."""
    import newtoncnn
    n, dtype = spec["n"], spec["dtype"]
    net = make_network(dtype)
    theta = net.init_params(0)
    X, y, _ = load_data(n, dtype)
    obj = newtoncnn.CNNObjective(net, X, y, C=C_REG, batch_size=n)
    v = np.random.default_rng(1).standard_normal(net.n_params).astype(dtype)
    return net, theta, X, y, obj, v


def worker_newtoncnn(spec):
    """Time one newtoncnn operation; returns (times, info)."""
    op, n, repeat = spec["op"], spec["n"], spec["repeat"]
    net, theta, X, _, obj, v = newtoncnn_setup(spec)
    info = {"baseline_mb": rss_mb()}
    if op == "forward":
        fn = lambda: net.forward(theta, X, batch_size=n)  # noqa: E731
    elif op == "fun_grad":
        fn = lambda: obj.fun_grad(theta)  # noqa: E731
    elif op.startswith("gn_build_"):
        mode = op[len("gn_build_"):]
        G = obj.gauss_newton(theta, mode=mode)
        info.update(mode=getattr(G, "mode", mode), nbytes=getattr(G, "nbytes", None))
        del G
        fn = lambda: obj.gauss_newton(theta, mode=mode)  # noqa: E731
    elif op == "gn_product_rop_stream":
        # the R-op setting keeping nothing, in batches of STREAM_BATCH: memory flat in |S|
        obj = type(obj)(net, X, obj.y, C=C_REG, batch_size=min(n, STREAM_BATCH))
        G = obj.gauss_newton(theta, mode="rop", memory_budget=0)
        info.update(mode="rop, nothing kept", nbytes=None)
        fn = lambda: G @ v  # noqa: E731
    elif op.startswith("gn_product_"):
        mode = op[len("gn_product_"):]
        G = obj.gauss_newton(theta, mode=mode)
        info.update(mode=getattr(G, "mode", mode), nbytes=getattr(G, "nbytes", None))
        fn = lambda: G @ v  # noqa: E731
    else:
        raise ValueError(f"unknown newtoncnn operation {op!r}")
    info["peak_reset"] = reset_peak_rss()
    return time_call(fn, repeat), info


def worker_torch(spec):
    """Time one PyTorch operation; returns (times, info)."""
    op, n, dtype, repeat = spec["op"], spec["n"], spec["dtype"], spec["repeat"]
    net = make_network(dtype)
    theta = net.init_params(0)
    X, y, _ = load_data(n, dtype)
    prob = TorchProblem(net, theta, X, y)
    v = torch_dict_from_flat(net, prob.model,
                             np.random.default_rng(1).standard_normal(net.n_params).astype(dtype))
    info = {"baseline_mb": rss_mb(), "torch": torch_summary()}
    if op == "forward":
        fn = prob.forward
    elif op == "fun_grad":
        fn = prob.fun_grad
    elif op == "gn_build_linearize":
        fn = prob.gn_linearize
    elif op == "gn_product_linearize":
        gv = prob.gn_linearize()
        fn = lambda: gv(v)  # noqa: E731
    elif op == "gn_product_jvp_vjp":
        fn = lambda: prob.gn_product(v)  # noqa: E731
    else:
        raise ValueError(f"unknown PyTorch operation {op!r}")
    info["peak_reset"] = reset_peak_rss()
    return time_call(fn, repeat), info


def run_worker(spec):
    """Entry point of ``--one``: run one measurement and return a JSON-able dict."""
    lib = spec["lib"]
    set_threads(spec["threads"], with_torch=(lib == "torch"))
    if lib == "sgemm":
        return worker_sgemm(spec)
    if lib == "jax":
        import jax_peer
        return jax_peer.run_interleaved(spec, make_network, load_data, rel_err, C_REG,
                                        CHECK_N, CHECK_RTOL)
    try:
        times, info = (worker_torch if lib == "torch" else worker_newtoncnn)(spec)
    except GN_MISSING as exc:
        if lib == "newtoncnn" and spec["op"].startswith("gn_"):
            return {"skipped": f"gauss_newton unavailable ({type(exc).__name__}: {exc})"}
        raise
    return dict(info, times_s=times, median_ms=1e3 * statistics.median(times), peak_mb=peak_rss_mb())


# ---------------------------------------------------------------------------
# Driver
# ---------------------------------------------------------------------------

def spawn(spec, verbose=True, stream_stderr=False):
    """Run one measurement in a fresh interpreter; its result dict (or {'error': ...}).

    ``stream_stderr`` passes the worker's progress lines (stderr) through as they come.
    """
    cmd = [sys.executable, os.path.abspath(__file__), "--one", json.dumps(spec)]
    proc = subprocess.run(cmd, check=False, text=True, stdout=subprocess.PIPE,
                          stderr=None if stream_stderr else subprocess.PIPE)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        stderr = proc.stderr if proc.stderr is not None else "(see the messages above)"
        tail = stderr.strip().splitlines()[-1:] or ["(no output)"]
        result = {"error": f"exit {proc.returncode}: {tail[0]}"}
    else:
        result = json.loads(lines[-1])
    if verbose:
        what = f"{spec['lib']:9s} {spec.get('op', ''):22s} n={spec.get('n', '-')}"
        if "median_ms" in result:
            msg = f"{result['median_ms']:10.1f} ms  peak {result['peak_mb']:7.0f} MB"
        else:
            msg = result.get("skipped") or result.get("error") or "done"
        print(f"  {what} {msg}", file=sys.stderr, flush=True)
    return result


def rel_err(a, b):
    """‖a − b‖ / ‖b‖ in float64."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), np.finfo(float).tiny))


def correctness_check(threads):
    """Compare newtoncnn and PyTorch in float64 on CHECK_N instances.

    Returns a list of (quantity, relative error or note); raises SystemExit if
    any comparison exceeds CHECK_RTOL.
    """
    import newtoncnn
    set_threads(threads, with_torch=True)
    net32, net = make_network("float32"), make_network("float64")
    theta = net32.init_params(0).astype(np.float64)
    X, y, _ = load_data(CHECK_N, "float64")
    obj = newtoncnn.CNNObjective(net, X, y, C=C_REG, batch_size=CHECK_N)
    prob = TorchProblem(net, theta, X, y)
    v = np.random.default_rng(1).standard_normal(net.n_params)
    v_t = torch_dict_from_flat(net, prob.model, v)

    rows = [("forward outputs", rel_err(net.forward(theta, X, batch_size=CHECK_N),
                                        prob.forward().numpy()))]
    f, g = obj.fun_grad(theta)
    f_t = prob.fun_grad()
    rows.append(("f", rel_err(f, f_t)))
    grads = [(W.grad, b.grad) for W, b in torch_param_list(prob.model)]
    rows.append(("gradient", rel_err(g, flat_from_torch(net, grads))))
    Gv_t = prob.flat(prob.gn_product(v_t))
    Gv_lin = prob.flat(prob.gn_linearize()(v_t))
    rows.append(("G v: torch linearize vs jvp+vjp", rel_err(Gv_lin, Gv_t)))
    for mode in GN_MODES:
        try:
            G = obj.gauss_newton(theta, mode=mode)
            rows.append((f"G v ({mode})", rel_err(G @ v, Gv_t)))
            rows.append((f"J v ({mode})", rel_err(G.jvp(v), prob.jvp(v_t).numpy())))
        except GN_MISSING as exc:
            rows.append((f"G v ({mode})", f"skipped: {type(exc).__name__}: {exc}"))
    bad = [(name, err) for name, err in rows if isinstance(err, float) and not err <= CHECK_RTOL]
    if bad:
        detail = "; ".join(f"{name}: {err:.3e}" for name, err in bad)
        raise SystemExit(f"peer_benchmark: newtoncnn and PyTorch disagree in float64 "
                         f"(n={CHECK_N}, tolerance {CHECK_RTOL:g}): {detail}. Aborting.")
    return rows


def flop_counts(net, n):
    """GEMM FLOPs of each newtoncnn operation (see the module docstring)."""
    F = net.forward_flops(n)
    F1 = net.geometry[0].flops(n)
    K = net.n_classes
    return {"forward": F, "fun_grad": 3 * F - F1,
            "gn_build_jacobian": F + K * (F - F1), "gn_build_rop": None,
            "gn_product_jacobian": 2 * F, "gn_product_rop": 4 * F - 2 * F1,
            "gn_product_rop_stream": 5 * F - 2 * F1}


#: (label, newtoncnn op, PyTorch op) rows of the table.
ROWS = [("forward", "forward", "forward"),
        ("f + gradient", "fun_grad", "fun_grad"),
        ("G build: jacobian / linearize+vjp", "gn_build_jacobian", "gn_build_linearize"),
        ("G build: rop / -", "gn_build_rop", None),
        ("G v: jacobian / linearized jvp+vjp", "gn_product_jacobian", "gn_product_linearize"),
        ("G v: rop / jvp+vjp", "gn_product_rop", "gn_product_jvp_vjp"),
        ("G v: rop keeping nothing / -", "gn_product_rop_stream", None)]

#: Batch size of the R-op row that keeps nothing (its memory must not grow with |S|).
STREAM_BATCH = 600

COLUMNS = ["operation (newtoncnn / PyTorch)", "n", "newtoncnn ms", "PyTorch ms",
           "PyTorch/newtoncnn", "newtoncnn GFLOP/s", "of GEMM peak", "of conv GEMMs",
           "newtoncnn peak MB (+op)", "PyTorch peak MB (+op)"]


def fmt_ms(r):
    if r is None:
        return "-"
    if "median_ms" in r:
        return f"{r['median_ms']:.1f}"
    return "n/a"


def fmt_mem(r):
    if r is None or "peak_mb" not in r:
        return "-"
    return f"{r['peak_mb']:.0f} (+{r['peak_mb'] - r['baseline_mb']:.0f})"


def table_rows(results, sizes, gemm, dtype):
    """The table as lists of strings (one per row)."""
    net = make_network(dtype)
    out = []
    for n in sizes:
        flops = flop_counts(net, n)
        conv_rate = gemm["conv"][str(n)]["gflops"]
        for label, op_nc, op_t in ROWS:
            r_nc = results.get(("newtoncnn", op_nc, n))
            r_t = results.get(("torch", op_t, n)) if op_t else None
            ms_nc = r_nc.get("median_ms") if r_nc else None
            ms_t = r_t.get("median_ms") if r_t else None
            ratio = f"{ms_t / ms_nc:.2f}" if ms_nc and ms_t else "-"
            if ms_nc and flops[op_nc]:
                gf = flops[op_nc] / (ms_nc * 1e-3) / 1e9
                rate = [f"{gf:.1f}", f"{gf / gemm['peak_gflops']:.0%}", f"{gf / conv_rate:.0%}"]
            else:
                rate = ["-", "-", "-"]
            out.append([label, str(n), fmt_ms(r_nc), fmt_ms(r_t), ratio, *rate,
                        fmt_mem(r_nc), fmt_mem(r_t)])
    return out


def render(rows, markdown, columns=COLUMNS):
    """The table as text (aligned columns) or Markdown."""
    if markdown:
        lines = ["| " + " | ".join(columns) + " |",
                 "|" + "|".join("---" if i == 0 else "---:" for i in range(len(columns))) + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        return "\n".join(lines)
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(columns)]
    fmt = lambda cells: "  ".join(c.ljust(w) if i == 0 else c.rjust(w)  # noqa: E731
                                  for i, (c, w) in enumerate(zip(cells, widths)))
    return "\n".join([fmt(columns), fmt(["-" * w for w in widths])] + [fmt(r) for r in rows])


def cpu_name():
    """The CPU model from /proc/cpuinfo (platform.processor() elsewhere)."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def header_lines(args, gemm, torch_info, data_source, baselines):
    import scipy
    import newtoncnn
    lines = [f"machine: {cpu_name()}, {os.cpu_count()} logical CPUs; threads: {args.threads}",
             f"python {platform.python_version()}, numpy {np.__version__}, scipy {scipy.__version__}, "
             f"newtoncnn {newtoncnn.__version__}",
             f"GLIBC_TUNABLES={os.environ.get('GLIBC_TUNABLES', '(unset)')}",
             "newtoncnn BLAS/OpenMP (threadpoolctl): " + "; ".join(gemm["blas"])]
    if torch_info:
        lines.append("PyTorch: " + "; ".join(torch_info))
    conv = ", ".join(f"n={n}: {c['gflops']:.1f} ("
                     + ", ".join(f"{s['shape']} {s['gflops']:.1f}" for s in c["shapes"]) + ")"
                     for n, c in gemm["conv"].items())
    lines += [f"{args.dtype} GEMM (scipy BLAS) 2048^3: {gemm['peak_gflops']:.1f} GFLOP/s; "
              f"conv-shaped GEMMs: {conv} GFLOP/s",
              f"data: {data_source}; C={C_REG}, squared loss, S = all n instances, "
              f"median of {args.repeat} after 1 warm-up",
              "peak MB = peak RSS of a fresh process per measurement (VmHWM; +op: above the "
              "baseline RSS after imports, data and weights: " + ", ".join(f"{k} {v:.0f} MB" for k, v in baselines.items())
              + ")"]
    return lines


def torch_check(args):
    """PyTorch's float64 check (exits on disagreement); notes for the table."""
    notes = []
    if not args.no_torch:
        try:
            import torch  # noqa: F401
        except ImportError:
            notes.append("PyTorch not installed: newtoncnn only")
            args.no_torch = True
    if not args.no_torch:
        print(f"correctness check (float64, n={CHECK_N}) ...", file=sys.stderr, flush=True)
        for name, err in correctness_check(args.threads):
            print(f"  {name:34s} " + (f"rel. error {err:.2e}" if isinstance(err, float) else err),
                  file=sys.stderr, flush=True)
    else:
        notes.append("correctness check skipped (needs PyTorch)")
    return notes


def peer_table(args, notes):
    """GEMM rates, every measurement in its own process, and the table: (text, Markdown)."""
    common = {"threads": args.threads, "repeat": args.repeat, "dtype": args.dtype}
    print("GEMM rates ...", file=sys.stderr, flush=True)
    gemm = spawn(dict(common, lib="sgemm", sizes=args.sizes), verbose=False)
    if "error" in gemm:
        raise SystemExit(f"peer_benchmark: GEMM measurement failed: {gemm['error']}")
    results = {}
    for n in args.sizes:
        for _, op_nc, op_t in ROWS:
            results[("newtoncnn", op_nc, n)] = spawn(dict(common, lib="newtoncnn", op=op_nc, n=n))
            if op_t and not args.no_torch:
                results[("torch", op_t, n)] = spawn(dict(common, lib="torch", op=op_t, n=n))
    skipped = sorted({r["skipped"] for r in results.values() if "skipped" in r})
    errors = sorted({f"{lib} {op} n={n}: {r['error']}" for (lib, op, n), r in results.items()
                     if "error" in r})
    notes = notes + [f"skipped: {s}" for s in skipped] + [f"failed: {e}" for e in errors]
    torch_info = next((r["torch"] for r in results.values() if "torch" in r), None)
    baselines = {}
    for (lib, op, n), r in results.items():
        if op == "forward" and "baseline_mb" in r:
            baselines[f"{lib} n={n}"] = r["baseline_mb"]
    for (lib, op, n), r in results.items():
        if op.startswith("gn_product_") and r.get("nbytes"):
            notes.append(f"newtoncnn G (mode {r.get('mode')!r}, n={n}) holds "
                         f"{r['nbytes'] / 2**20:.0f} MB")
    notes.append(best_gv_summary(results, args.sizes))
    _, _, source = load_data(1, args.dtype)
    header = header_lines(args, gemm, torch_info, source, baselines)
    rows = table_rows(results, args.sizes, gemm, args.dtype)
    return section(header, rows, COLUMNS, notes)


def section(header, rows, columns, notes):
    """(text, Markdown) of header lines, a table and notes."""
    notes = [n for n in notes if n]
    text = ("\n".join(header) + "\n\n" + render(rows, False, columns) + "\n\n"
            + "".join(f"note: {note}\n" for note in notes))
    md = ("\n".join(f"- {line}" for line in header) + "\n\n" + render(rows, True, columns)
          + "\n\n" + "".join(f"- {note}\n" for note in notes))
    return text, md


def jax_section(args):
    """The interleaved newtoncnn / JAX section, measured in one fresh process: (text, Markdown).

    Exits if JAX and newtoncnn disagree in float64; a clear note if jax is not installed.
    """
    import jax_peer
    title = "newtoncnn and JAX, interleaved in one process"
    if not jax_peer.jax_installed():
        msg = "JAX section skipped: jax is not installed (pip install jax; it is optional)"
        print(f"peer_benchmark: {msg}", file=sys.stderr, flush=True)
        return f"=== {title} ===\n{msg}\n", f"### {title}\n\n{msg}\n"
    print(f"JAX: correctness check (float64, n={CHECK_N}), then interleaved timing ...",
          file=sys.stderr, flush=True)
    spec = {"threads": args.threads, "repeat": args.repeat, "dtype": args.dtype,
            "sizes": args.sizes, "lib": "jax"}
    result = spawn(spec, verbose=False, stream_stderr=True)
    if "abort" in result:
        raise SystemExit(result["abort"])
    if "error" in result:
        raise SystemExit(f"peer_benchmark: the JAX section failed: {result['error']}")
    info = result["info"]
    worst = max(err for _, err in result["check"])
    header = [(f"JAX {info['jax']} (jaxlib {info['jaxlib']}, backend {info['backend']}), "
               f"jax.jit, NHWC images / HWIO kernels; NPROC={info['NPROC']}, "
               f"XLA_FLAGS={info['XLA_FLAGS']}; XLA intra-op pool: {info['pool_threads']} "
               f"threads; newtoncnn threads: {args.threads}"),
              (f"float64 check against newtoncnn (n={CHECK_N}: outputs, f, gradient, J v, G v "
               f"of both settings): largest relative error {worst:.1e}"),
              (f"{args.dtype}; per row and n, newtoncnn's call and JAX's call alternate for "
               f"{args.repeat} rounds in one process after JAX's compile and one warm-up call "
               "of each; medians; JAX/newtoncnn > 1 means newtoncnn is faster; 'newtoncnn "
               "faster in' counts the rounds where its call beat the JAX call that followed")]
    notes = ["JAX first call (trace + compile + run): "
             + "; ".join(f"{r['op']} n={r['n']} {r['jax_first_call_s']:.1f} s"
                         for r in result["rows"])]
    text, md = section(header, jax_peer.table_rows(result["rows"]), jax_peer.JAX_COLUMNS, notes)
    return f"=== {title} ===\n{text}", f"### {title}\n\n{md}"


def run_benchmark(args):
    """Correctness checks, the measurements, and the printed tables.

    The JAX section (``--jax``, ``--jax-only``) runs before the PyTorch table so
    that its float64 check aborts early, and is printed after it.
    """
    notes = [] if args.jax_only else torch_check(args)
    jax_text = jax_md = None
    if args.jax or args.jax_only:
        jax_text, jax_md = jax_section(args)
    texts, mds = [], []
    if not args.jax_only:
        text, md = peer_table(args, notes)
        texts.append(text)
        mds.append(md)
    if jax_text:
        texts.append(jax_text)
        mds.append(jax_md)
    print("\n".join(texts), end="")
    if args.markdown:
        with open(args.markdown, "w") as fh:
            fh.write("\n".join(mds))


def best_gv_summary(results, sizes):
    """One line per n: fastest newtoncnn G v against fastest PyTorch G v."""
    parts = []
    for n in sizes:
        nc = [(r["median_ms"], op) for (lib, op, m), r in results.items()
              if lib == "newtoncnn" and m == n and op.startswith("gn_product") and "median_ms" in r]
        pt = [(r["median_ms"], op) for (lib, op, m), r in results.items()
              if lib == "torch" and m == n and op.startswith("gn_product") and "median_ms" in r]
        if nc and pt:
            (a, op_a), (b, op_b) = min(nc), min(pt)
            parts.append(f"n={n}: newtoncnn {op_a[11:]} {a:.1f} ms vs PyTorch {op_b[11:]} "
                         f"{b:.1f} ms ({b / a:.2f}x)")
    return "fastest G v: " + "; ".join(parts) if parts else ""


def run_both_allocators(argv, markdown):
    """Re-run this script with and without the tuned GLIBC_TUNABLES; print both tables."""
    sections = []
    for label, value in (("tuned", TUNED_GLIBC), ("default", None)):
        env = dict(os.environ)
        env.pop("GLIBC_TUNABLES", None)
        if value:
            env["GLIBC_TUNABLES"] = value
        cmd = [sys.executable, os.path.abspath(__file__)] + argv
        md = None
        if markdown:
            md = tempfile.NamedTemporaryFile(suffix=".md", delete=False).name
            cmd += ["--markdown", md]
        print(f"=== allocator: {label} (GLIBC_TUNABLES={value or '(unset)'}) ===", flush=True)
        rc = subprocess.call(cmd, env=env)
        if rc != 0:
            raise SystemExit(rc)
        if md:
            with open(md) as fh:
                sections.append(f"### GLIBC_TUNABLES={value or '(unset)'}\n\n{fh.read()}")
            os.unlink(md)
        print(flush=True)
    if markdown:
        with open(markdown, "w") as fh:
            fh.write("\n".join(sections))


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[600, 3000],
                   help="numbers of instances n (default: 600 3000)")
    p.add_argument("--threads", type=int, default=2, help="threads for both libraries (default 2)")
    p.add_argument("--repeat", type=int, default=5, help="timed repeats after a warm-up (default 5)")
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    p.add_argument("--no-torch", action="store_true", help="measure newtoncnn only")
    p.add_argument("--jax", action="store_true",
                   help="add the section timing newtoncnn and JAX interleaved in one process "
                        "(needs jax; skipped with a message without it)")
    p.add_argument("--jax-only", action="store_true",
                   help="the JAX section alone, without the subprocess-per-measurement table")
    p.add_argument("--markdown", metavar="FILE", help="also write the table as Markdown to FILE")
    p.add_argument("--both-allocators", action="store_true",
                   help="run twice, with and without GLIBC_TUNABLES=" + TUNED_GLIBC)
    p.add_argument("--one", metavar="SPEC", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.threads < 1 or args.repeat < 1 or any(n < 1 for n in args.sizes):
        p.error("--threads, --repeat and --sizes must be positive")
    return args


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    if args.one:
        print(json.dumps(run_worker(json.loads(args.one))))
        return
    if args.both_allocators:
        rest, skip = [], False
        for a in argv:  # drop --both-allocators and --markdown FILE
            if skip:
                skip = False
            elif a == "--both-allocators":
                continue
            elif a == "--markdown":
                skip = True
            elif not a.startswith("--markdown="):
                rest.append(a)
        run_both_allocators(rest, args.markdown)
        return
    run_benchmark(args)


if __name__ == "__main__":
    main()
