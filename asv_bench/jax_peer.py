"""The JAX column of ``peer_benchmark.py``: the paper's network in JAX, timed interleaved.

JAX is optional: nothing here imports it at module level, and ``peer_benchmark.py``
imports this module only when ``--jax`` asks for the section.  The section runs in
one fresh process (``peer_benchmark.py --one`` with ``lib="jax"``) so that the
thread count reaches XLA: ``XLA_FLAGS`` is read once, when jax is imported.

The JAX twin uses XLA CPU's fast layouts (NHWC images, HWIO kernels) under
``jax.jit``; newtoncnn flattens its last conv map in NCHW order, so the twin
transposes NHWC -> NCHW before flattening and the dense weights are shared as
they are.  Every operation is first checked against newtoncnn in float64, then
newtoncnn's call and JAX's call alternate for ``repeat`` rounds after a warm-up
(which compiles), so machine noise hits both alike.
"""
import os
import statistics
import sys
import time

import numpy as np

#: (label, newtoncnn op, JAX op): the rows that pair, labelled as in the PyTorch table.
JAX_ROWS = [("forward", "forward", "forward"),
            ("f + gradient", "fun_grad", "fun_grad"),
            ("G build: jacobian / linearize+vjp", "gn_build_jacobian", "gn_build_linearize"),
            ("G v: jacobian / linearized jvp+vjp", "gn_product_jacobian", "gn_product_linearize"),
            ("G v: rop / jvp+vjp", "gn_product_rop", "gn_product_jvp_vjp")]

JAX_COLUMNS = ["operation (newtoncnn / JAX)", "n", "newtoncnn ms", "JAX ms", "JAX/newtoncnn",
               "newtoncnn faster in"]


def jax_installed():
    """True if jax can be imported (checked without importing it)."""
    import importlib.util
    return importlib.util.find_spec("jax") is not None


def import_jax(threads):
    """Import jax with XLA CPU held to ``threads`` threads and float64 enabled.

    Parameters
    ----------
    threads : int
        Intra-op threads of XLA's CPU backend.

    Returns
    -------
    module
        The ``jax`` module.
    """
    if "jax" in sys.modules:
        # XLA_FLAGS is read when the backend starts: too late to set the threads
        raise RuntimeError("jax_peer.import_jax: jax is already imported, its thread "
                           "count can no longer be set")
    flags = f"--xla_cpu_multi_thread_eigen=true intra_op_parallelism_threads={threads}"
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + flags).strip()
    # jaxlib 0.10 ignores the intra_op_parallelism_threads token: its CPU client sizes
    # the intra-op pool (threads "tf_XLAEigen") from NPROC, else from the CPU count
    os.environ["NPROC"] = str(threads)
    import jax
    # the correctness check compares float64 results; float32 arrays stay float32
    jax.config.update("jax_enable_x64", True)
    return jax


class JaxProblem:
    """The objective of docs/guide/objective.rst and its Gauss-Newton products in JAX.

    The same definitions as ``peer_benchmark.TorchProblem``:
    f = θᵀθ / (2 C l) + (1/l) Σ_i ‖z_i − onehot(y_i)‖², l = n;
    G v = v / (C l) + (1/n) Σ_i J_iᵀ (2I) J_i v.  Parameters are a list of
    per-layer ``(W, b)``: conv W in HWIO, dense W as ``(out, in)`` (z = x Wᵀ + b).

    Parameters
    ----------
    net : newtoncnn.CNN
        The network (its geometry and dtype).
    theta : ndarray
        Flat parameters in newtoncnn's layout.
    X : ndarray
        Images ``(n, C, H, W)`` (NCHW, as newtoncnn takes them).
    y : ndarray
        Labels ``0 .. K-1``.
    C : float
        Regularization constant.
    """

    def __init__(self, net, theta, X, y, C):
        import jax
        import jax.numpy as jnp
        self.jax, self.jnp, self.net = jax, jnp, net
        self.n = X.shape[0]
        self.reg = 1.0 / (C * self.n)
        self.params = self.from_flat(theta)
        self.x = jnp.asarray(np.ascontiguousarray(np.transpose(X, (0, 2, 3, 1))))
        self.Y = jnp.asarray(np.eye(net.n_classes, dtype=net.dtype)[np.asarray(y)])
        outputs = self._outputs_fn()
        reg, n = self.reg, self.n

        def objective(params, x, Y):
            sq = sum(jnp.sum(W * W) + jnp.sum(b * b) for W, b in params)
            return sq * (reg / 2.0) + jnp.sum((outputs(params, x) - Y) ** 2) / n

        def finish(v, Jv, vjp_fn):
            (g,) = vjp_fn(Jv * (2.0 / n))
            return jax.tree_util.tree_map(lambda gi, vi: gi + reg * vi, g, v)

        def build_linearize(params, x):
            # forward pass + the residuals the linear map needs; the jvp comes back
            # as a pytree (jax.tree_util.Partial) holding them, so it can cross jit
            return jax.linearize(lambda p: outputs(p, x), params)[1]

        def product_linearize(jvp_fn, v):
            # the vjp is the transpose of the stored linear map: no pass at θ again
            vjp_fn = jax.linear_transpose(jvp_fn, v)
            return finish(v, jvp_fn(v), vjp_fn)

        def product_jvp_vjp(params, x, v):
            def f(p):
                return outputs(p, x)
            _, Jv = jax.jvp(f, (params,), (v,))
            _, vjp_fn = jax.vjp(f, params)
            return finish(v, Jv, vjp_fn)

        self.forward_fn = jax.jit(outputs)
        self.fun_grad_fn = jax.jit(jax.value_and_grad(objective))
        self.build_fn = jax.jit(build_linearize)
        self.product_linearize_fn = jax.jit(product_linearize)
        self.product_jvp_vjp_fn = jax.jit(product_jvp_vjp)
        self.jvp_fn = jax.jit(lambda params, x, v: jax.jvp(lambda p: outputs(p, x),
                                                           (params,), (v,))[1])

    def _outputs_fn(self):
        """params, x (NHWC) -> z (n, K), the network of ``net.geometry``."""
        from jax import lax

        from newtoncnn.layers import ConvGeometry
        jnp, geometry = self.jnp, self.net.geometry

        def outputs(params, x):
            z, flat = x, False
            for g, (W, b) in zip(geometry, params):
                if isinstance(g, ConvGeometry):
                    z = lax.conv_general_dilated(z, W, (g.stride, g.stride),
                                                 [(g.padding, g.padding)] * 2,
                                                 dimension_numbers=("NHWC", "HWIO", "NHWC")) + b
                    z = jnp.maximum(z, 0)
                    if g.pool > 1:
                        window = (1, g.pool, g.pool, 1)
                        z = lax.reduce_window(z, -jnp.inf, lax.max, window, window, "VALID")
                else:
                    if not flat:
                        # newtoncnn (and PyTorch's Flatten) flatten in NCHW order
                        z = jnp.transpose(z, (0, 3, 1, 2)).reshape(z.shape[0], -1)
                        flat = True
                    z = z @ W.T + b
                    if g.relu:
                        z = jnp.maximum(z, 0)
            return z
        return outputs

    def from_flat(self, v):
        """A flat vector in θ's layout -> JAX parameters (conv W OIHW -> HWIO)."""
        from newtoncnn.layers import ConvGeometry
        out = []
        for g, (W, b) in zip(self.net.geometry, self.net.get_weights(v)):
            if isinstance(g, ConvGeometry):
                W = np.transpose(W, (2, 3, 1, 0))
            out.append((self.jnp.asarray(np.ascontiguousarray(W)),
                        self.jnp.asarray(np.ascontiguousarray(b))))
        return out

    def to_flat(self, params):
        """JAX parameters (or a gradient of them) -> a flat vector in θ's layout."""
        from newtoncnn.layers import ConvGeometry
        pairs = []
        for g, (W, b) in zip(self.net.geometry, params):
            W = np.asarray(W)
            if isinstance(g, ConvGeometry):
                W = np.transpose(W, (3, 2, 0, 1))
            pairs.append((np.ascontiguousarray(W), np.asarray(b)))
        return self.net.set_weights(pairs)

    def op(self, name, v):
        """A no-argument callable running JAX operation ``name`` to completion.

        Parameters
        ----------
        name : str
            ``forward``, ``fun_grad``, ``gn_build_linearize``, ``gn_product_linearize``
            or ``gn_product_jvp_vjp``.
        v : list
            The direction of the products, as JAX parameters.
        """
        block = self.jax.block_until_ready
        params, x, Y = self.params, self.x, self.Y
        if name == "forward":
            return lambda: block(self.forward_fn(params, x))
        if name == "fun_grad":
            return lambda: block(self.fun_grad_fn(params, x, Y))
        if name == "gn_build_linearize":
            return lambda: block(self.build_fn(params, x))
        if name == "gn_product_linearize":
            jvp_fn = block(self.build_fn(params, x))
            return lambda: block(self.product_linearize_fn(jvp_fn, v))
        if name == "gn_product_jvp_vjp":
            return lambda: block(self.product_jvp_vjp_fn(params, x, v))
        raise ValueError(f"unknown JAX operation {name!r}")


def newtoncnn_op(name, net, theta, X, obj, v):
    """A no-argument callable running newtoncnn operation ``name`` (as in the PyTorch table)."""
    n = X.shape[0]
    if name == "forward":
        return lambda: net.forward(theta, X, batch_size=n)
    if name == "fun_grad":
        return lambda: obj.fun_grad(theta)
    if name == "gn_build_jacobian":
        return lambda: obj.gauss_newton(theta, mode="jacobian")
    if name.startswith("gn_product_"):
        G = obj.gauss_newton(theta, mode=name[len("gn_product_"):])
        return lambda: G @ v
    raise ValueError(f"unknown newtoncnn operation {name!r}")


def correctness_check(make_network, load_data, rel_err, n, C):
    """Compare newtoncnn and JAX in float64 on n instances: [(quantity, relative error)]."""
    import newtoncnn
    net32, net = make_network("float32"), make_network("float64")
    theta = net32.init_params(0).astype(np.float64)
    X, y, _ = load_data(n, "float64")
    obj = newtoncnn.CNNObjective(net, X, y, C=C, batch_size=n)
    prob = JaxProblem(net, theta, X, y, C)
    v = np.random.default_rng(1).standard_normal(net.n_params)
    v_j = prob.from_flat(v)
    rows = [("forward outputs", rel_err(np.asarray(prob.forward_fn(prob.params, prob.x)),
                                        net.forward(theta, X, batch_size=n)))]
    f, g = obj.fun_grad(theta)
    f_j, g_j = prob.fun_grad_fn(prob.params, prob.x, prob.Y)
    rows += [("f", rel_err(float(f_j), f)), ("gradient", rel_err(prob.to_flat(g_j), g))]
    Gv_lin = prob.to_flat(prob.product_linearize_fn(prob.build_fn(prob.params, prob.x), v_j))
    Gv_jvp = prob.to_flat(prob.product_jvp_vjp_fn(prob.params, prob.x, v_j))
    Jv = np.asarray(prob.jvp_fn(prob.params, prob.x, v_j))
    for mode in ("jacobian", "rop"):
        G = obj.gauss_newton(theta, mode=mode)
        Gv = G @ v
        rows += [(f"G v ({mode}) / JAX linearize", rel_err(Gv_lin, Gv)),
                 (f"G v ({mode}) / JAX jvp+vjp", rel_err(Gv_jvp, Gv)),
                 (f"J v ({mode})", rel_err(Jv, G.jvp(v)))]
    return rows


def run_interleaved(spec, make_network, load_data, rel_err, C, check_n, check_rtol):
    """The JAX section: check in float64, then time each row interleaved.

    Parameters
    ----------
    spec : dict
        ``threads``, ``repeat``, ``dtype`` and ``sizes`` of the run.
    make_network, load_data, rel_err : callable
        ``peer_benchmark``'s helpers (the same network, data and error measure).
    C : float
        Regularization constant.
    check_n : int
        Instances of the float64 check.
    check_rtol : float
        Largest relative error the check accepts.

    Returns
    -------
    dict
        ``check`` (quantity, error) pairs, ``rows`` (label, n, per-round newtoncnn
        and JAX seconds) and ``info`` (versions and flags); or ``abort`` with a message
        if the check failed.
    """
    import newtoncnn
    newtoncnn.set_num_threads(spec["threads"])
    jax = import_jax(spec["threads"])
    check = correctness_check(make_network, load_data, rel_err, check_n, C)
    for name, err in check:
        print(f"  {name:34s} rel. error {err:.2e}", file=sys.stderr, flush=True)
    bad = [(name, err) for name, err in check if not err <= check_rtol]
    if bad:
        detail = "; ".join(f"{name}: {err:.3e}" for name, err in bad)
        return {"check": check,
                "abort": f"peer_benchmark: newtoncnn and JAX disagree in float64 (n={check_n}, "
                         f"tolerance {check_rtol:g}): {detail}. Aborting."}
    dtype, repeat = spec["dtype"], spec["repeat"]
    rows = []
    for n in spec["sizes"]:
        net = make_network(dtype)
        theta = net.init_params(0)
        X, y, _ = load_data(n, dtype)
        obj = newtoncnn.CNNObjective(net, X, y, C=C, batch_size=n)
        v = np.random.default_rng(1).standard_normal(net.n_params).astype(dtype)
        prob = JaxProblem(net, theta, X, y, C)
        v_j = prob.from_flat(v)
        for label, op_nc, op_j in JAX_ROWS:
            fn_nc = newtoncnn_op(op_nc, net, theta, X, obj, v)
            fn_j = prob.op(op_j, v_j)
            t0 = time.perf_counter()
            fn_j()  # traces and compiles
            compile_s = time.perf_counter() - t0
            fn_nc(), fn_j()  # warm-up of both, compiled
            t_nc, t_j = [], []
            for _ in range(repeat):
                # results are dropped outside the timed region, as in time_call
                t0 = time.perf_counter()
                out = fn_nc()
                t_nc.append(time.perf_counter() - t0)
                del out
                t0 = time.perf_counter()
                out = fn_j()
                t_j.append(time.perf_counter() - t0)
                del out
            del fn_nc, fn_j
            rows.append({"label": label, "op": op_j, "n": n, "newtoncnn_s": t_nc, "jax_s": t_j,
                         "jax_first_call_s": compile_s})
            print(f"  interleaved {label:36s} n={n}: newtoncnn "
                  f"{1e3 * statistics.median(t_nc):9.1f} ms  "
                  f"JAX {1e3 * statistics.median(t_j):9.1f} ms", file=sys.stderr, flush=True)
        del prob, obj
    info = {"jax": jax.__version__, "jaxlib": _jaxlib_version(),
            "backend": jax.default_backend(), "XLA_FLAGS": os.environ.get("XLA_FLAGS", ""),
            "NPROC": os.environ.get("NPROC"), "pool_threads": xla_pool_threads()}
    return {"check": check, "rows": rows, "info": info}


def xla_pool_threads():
    """Threads of XLA CPU's intra-op pool in this process (None where /proc is missing)."""
    try:
        tasks = os.listdir("/proc/self/task")
    except OSError:
        return None
    count = 0
    for task in tasks:
        try:
            with open(f"/proc/self/task/{task}/comm") as fh:
                count += fh.read().strip() == "tf_XLAEigen"
        except OSError:
            pass
    return count


def _jaxlib_version():
    try:
        import jaxlib
        return jaxlib.__version__
    except (ImportError, AttributeError):
        return "?"


def table_rows(rows):
    """The JAX section as lists of strings (one per row)."""
    out = []
    for r in rows:
        a, b = statistics.median(r["newtoncnn_s"]), statistics.median(r["jax_s"])
        wins = sum(tn < tj for tn, tj in zip(r["newtoncnn_s"], r["jax_s"]))
        out.append([r["label"], str(r["n"]), f"{1e3 * a:.1f}", f"{1e3 * b:.1f}", f"{b / a:.2f}",
                    f"{wins}/{len(r['jax_s'])} rounds"])
    return out
