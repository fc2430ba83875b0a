"""SVI step cost of a Gaussian mixture, relaxed (Concrete) vs enumerated, as N and K grow.

    python benchmarks/svi_cost.py [--fast] [--threads N] [--repeats R] [--clock cpu|wall]

The model (tutorial 03's, with ``K`` components and ``N`` points): ``locs ~ N(0, 10^2)^K``;
for each point, inside a plate, a one-hot assignment ``z_i ~ OneHotCategorical(1/K)`` and
``x_i ~ N(select(locs, z_i), 1)``.  One SVI step (loss, gradient, Adam update; float32,
validation off) of:

- **relaxed**: ``relax(model, temperature=1/2)`` + ``AutoRelaxed`` (an ``ExpConcrete`` guide
  with ``N x K`` learnable logits at temperature 2/3, ``AutoNormal`` for ``locs``) +
  ``Trace_ELBO``: one pathwise sample of every assignment;
- **enumerated**: ``TraceEnum_ELBO(max_plate_nesting=1)`` on the model marked for parallel
  enumeration (``config_enumerate``) with ``AutoNormal`` on ``locs`` alone: the ``K``
  values of every assignment summed out exactly;

in Pyro (eager) and NumPyro (``jax.jit(svi.update)``).  NumPyro's enumeration needs the
optional ``funsor`` package and enumerates integer-valued sites only (it sets the value to
``arange(K)``), so its enumerated model uses ``Categorical`` with the same
``select(locs, z)`` (an index is one-hot encoded, the same arithmetic); without ``funsor``
the NumPyro-enumerated column is left empty and NumPyro-relaxed is compared with
Pyro-enumerated and across sizes.

Every (backend, method, N, K) case is timed in **one** interleaved run
(``common.time_interleaved``), so that every ratio in the tables, including those between
sizes, compares two cases measured side by side.  Steps-per-second ratios are
``t(other) / t(relaxed)``: **> 1 means the relaxed step is faster**.  The scaling
exponents are least-squares slopes of ``log t`` against ``log N`` (at fixed K) and against
``log K`` (at fixed N), fitted per repeat; the median over repeats is reported, with the
local slope between the two largest sizes (the asymptotic regime, where the per-step
fixed overhead no longer dominates).  The Pyro cases each run in a private parameter
store (``pyro.get_param_store().scope``), so that the guides' parameter names do not clash.
"""

import statistics
import sys
import warnings
from collections.abc import Callable

import numpy as np
from common import (
    Options,
    environment,
    import_numpyro_concrete,
    markdown_table,
    parse_options,
    time_interleaved,
)

PRIOR_TEMPERATURE = 0.5
LR = 0.01

PYRO_RELAXED = "Pyro relaxed"
PYRO_ENUM = "Pyro enumerated"
NUMPYRO_RELAXED = "NumPyro relaxed (jit)"
NUMPYRO_ENUM = "NumPyro enumerated (jit, funsor)"


def sizes(options: Options) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(numbers of points N, numbers of components K)."""
    return ((20, 40), (2, 3)) if options.fast else ((100, 1000, 10000), (3, 10, 30, 100))


def numpyro_cells(options: Options) -> list[tuple[int, int]]:
    """The (N, K) cells NumPyro runs: all of them, or under ``--fast`` only the first (each
    new shape costs NumPyro seconds of XLA compilation, in ``svi.init``'s eager tracing
    of the model and guide as well as in the jitted update)."""
    cells = _cells(*sizes(options))
    return cells[:1] if options.fast else cells


def mixture_data(n: int, k: int, seed: int = 0) -> np.ndarray:
    """``n`` float32 points from ``k`` unit-variance clusters spaced 4 apart."""
    rng = np.random.default_rng(seed)
    locs = 4.0 * np.arange(k) - 2.0 * (k - 1)
    return (locs[rng.integers(0, k, n)] + rng.standard_normal(n)).astype(np.float32)


# --------------------------------------------------------------------------- Pyro


def pyro_steps(n: int, k: int) -> dict[str, Callable[[], object]]:
    """One SVI step of each Pyro method, each in its own parameter store."""
    import pyro
    import pyro.distributions as dist
    import torch
    from pyro import poutine
    from pyro.infer import SVI, Trace_ELBO, TraceEnum_ELBO, config_enumerate
    from pyro.infer.autoguide import AutoNormal
    from pyro.optim import Adam

    import pyro_concrete as pc

    def mixture(data: torch.Tensor) -> None:
        locs = pyro.sample("locs", dist.Normal(0.0, 10.0).expand([k]).to_event(1))
        with pyro.plate("data", len(data)):
            z = pyro.sample("z", dist.OneHotCategorical(torch.ones(k) / k))
            pyro.sample("x", dist.Normal(pc.select(locs, z), 1.0), obs=data)

    data = torch.as_tensor(mixture_data(n, k))
    store = pyro.get_param_store()
    relaxed = pc.relax(mixture, temperature=PRIOR_TEMPERATURE)
    methods = {
        PYRO_RELAXED: (relaxed, pc.AutoRelaxed(relaxed), Trace_ELBO()),
        PYRO_ENUM: (
            config_enumerate(mixture),
            AutoNormal(poutine.block(mixture, expose=["locs"])),
            TraceEnum_ELBO(max_plate_nesting=1),
        ),
    }
    steps = {}
    for name, (model, guide, elbo) in methods.items():
        pyro.set_rng_seed(0)
        with store.scope() as state:
            svi = SVI(model, guide, Adam({"lr": LR}), elbo)
            svi.step(data)  # builds the guide's parameters

        def step(svi: SVI = svi, state: dict = state) -> float:
            with store.scope(state):
                return svi.step(data)

        steps[name] = step
    return steps


# --------------------------------------------------------------------------- NumPyro


def numpyro_steps(n: int, k: int, enumerate_too: bool) -> dict[str, Callable[[], object]]:
    """One jitted ``svi.update`` of each NumPyro method (the state carried between calls)."""
    import jax
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as nd
    from numpyro.infer import SVI, Trace_ELBO
    from numpyro.infer.autoguide import AutoNormal

    import numpyro_concrete as nc

    def mixture(data: jax.Array, family: type) -> None:
        locs = numpyro.sample("locs", nd.Normal(0.0, 10.0).expand([k]).to_event(1))
        with numpyro.plate("data", data.shape[0]):
            z = numpyro.sample("z", family(jnp.ones(k) / k))
            numpyro.sample("x", nd.Normal(nc.select(locs, z), 1.0), obs=data)

    def one_hot_mixture(data: jax.Array) -> None:
        mixture(data, nc.OneHotCategorical)

    def categorical_mixture(data: jax.Array) -> None:
        mixture(data, nd.Categorical)

    data = jnp.asarray(mixture_data(n, k))
    relaxed = nc.relax(one_hot_mixture, temperature=PRIOR_TEMPERATURE)
    methods = {NUMPYRO_RELAXED: (relaxed, nc.AutoRelaxed(relaxed), Trace_ELBO())}
    if enumerate_too:
        from numpyro.contrib.funsor import config_enumerate
        from numpyro.infer import TraceEnum_ELBO

        methods[NUMPYRO_ENUM] = (
            config_enumerate(categorical_mixture),
            AutoNormal(numpyro.handlers.block(categorical_mixture, expose=["locs"])),
            TraceEnum_ELBO(max_plate_nesting=1),
        )
    steps = {}
    for name, (model, guide, elbo) in methods.items():
        svi = SVI(model, guide, numpyro.optim.Adam(LR), elbo)
        update = jax.jit(svi.update)
        holder = [_init(svi, data)]

        def step(update: Callable = update, holder: list = holder) -> object:
            holder[0], loss = update(holder[0], data)
            return jax.block_until_ready(loss)

        steps[name] = step
    return steps


def _init(svi, data) -> object:
    """``svi.init`` under ``jax.jit``: one XLA compilation instead of the ~100 that NumPyro's
    eager initialisation (guide prototype, ``find_valid_initial_params``) costs per new
    shape, seconds each case on this machine.  The guide keeps the traced prototype, whose
    values ``svi.update`` never reads (the parameters come from the state), and the state
    is the eager one's (checked: losses equal to float32 rounding, parameters equal after
    100 steps, relaxed and enumerated).  Falls back to the eager ``svi.init`` if tracing
    it fails."""
    import jax

    key = jax.random.PRNGKey(0)
    try:
        return jax.jit(svi.init)(key, data)
    except Exception:  # a guide whose setup cannot be traced: initialise eagerly
        svi.guide.prototype_trace = None
        return svi.init(key, data)


def funsor_status() -> str | None:
    """``None`` if NumPyro can enumerate (``funsor`` importable), else why not."""
    try:
        import funsor  # noqa: F401
    except ImportError:
        return (
            "NumPyro enumeration not measured: `TraceEnum_ELBO` needs the `funsor` package, "
            "which is not installed here (it is not a dependency of this project). "
            "NumPyro-relaxed is compared with Pyro-enumerated and across sizes instead."
        )
    return None


# --------------------------------------------------------------------------- tables


def _slope(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of ``log y`` against ``log x``."""
    lx, ly = np.log(xs), np.log(ys)
    lx = lx - lx.mean()
    return float((lx * (ly - ly.mean())).sum() / (lx * lx).sum())


def _median_slope(seconds: dict, method: str, cells: list[tuple[int, int]], axis: int) -> str:
    """Median over repeats of the per-repeat log-log slope over ``cells`` (along N or K);
    "-" unless the method ran at two sizes or more."""
    cells = [cell for cell in cells if (method, *cell) in seconds]
    if len(cells) < 2:
        return "-"
    xs = [cell[axis] for cell in cells]
    per_repeat = zip(*(seconds[(method, *cell)] for cell in cells), strict=True)
    return f"{statistics.median(_slope(xs, list(ts)) for ts in per_repeat):.2f}"


def _cells(ns: tuple[int, ...], ks: tuple[int, ...]) -> list[tuple[int, int]]:
    return [(n, k) for n in ns for k in ks]


def ratio_table(timing, methods: list[str], ns, ks) -> str:
    """Steps-per-second ratios per (N, K), and the CPU milliseconds per step."""

    def timed(*cases: tuple[str, int, int]) -> bool:
        return all(case in timing.seconds for case in cases)

    def ratio(other: str, relaxed: str, n: int, k: int) -> str:
        if not timed((other, n, k), (relaxed, n, k)):
            return "-"
        return f"{timing.ratio((other, n, k), (relaxed, n, k)):.2f}"

    def spread(other: str, relaxed: str, n: int, k: int) -> str:
        if not timed((other, n, k), (relaxed, n, k)):
            return "-"
        lo, hi = timing.spread((other, n, k), (relaxed, n, k))
        return f"{lo:.2f}-{hi:.2f}"

    rows = []
    for n, k in _cells(ns, ks):
        rows.append(
            [
                n,
                k,
                ratio(PYRO_ENUM, PYRO_RELAXED, n, k),
                spread(PYRO_ENUM, PYRO_RELAXED, n, k),
                ratio(NUMPYRO_ENUM, NUMPYRO_RELAXED, n, k),
                ratio(PYRO_RELAXED, NUMPYRO_RELAXED, n, k),
                ratio(PYRO_ENUM, NUMPYRO_RELAXED, n, k),
                *(
                    f"{1e3 * timing.median((m, n, k)):.2f}" if timed((m, n, k)) else "-"
                    for m in (PYRO_RELAXED, PYRO_ENUM, NUMPYRO_RELAXED, NUMPYRO_ENUM)
                ),
            ]
        )
    headers = [
        "N",
        "K",
        "relaxed/enumerated steps/s, Pyro",
        "per-repeat range",
        "relaxed/enumerated steps/s, NumPyro",
        "NumPyro-relaxed/Pyro-relaxed steps/s",
        "NumPyro-relaxed/Pyro-enumerated steps/s",
        "CPU ms/step: Pyro relaxed",
        "Pyro enum",
        "NumPyro relaxed",
        "NumPyro enum",
    ]
    return markdown_table(headers, rows)


def scaling_table(timing, methods: list[str], ns, ks) -> str:
    """Exponents ``p`` of ``t ~ N^p`` (at each K) and ``t ~ K^p`` (at each N)."""
    rows = []
    for method in methods:
        for k in ks:
            cells = [(n, k) for n in ns]
            local = _median_slope(timing.seconds, method, cells[-2:], 0)
            fit = _median_slope(timing.seconds, method, cells, 0)
            rows.append([method, "N", f"K = {k}", fit, local])
        for n in ns:
            cells = [(n, k) for k in ks]
            local = _median_slope(timing.seconds, method, cells[-2:], 1)
            fit = _median_slope(timing.seconds, method, cells, 1)
            rows.append([method, "K", f"N = {n}", fit, local])
    headers = [
        "method",
        "grows",
        "held fixed",
        f"exponent, fit over {{{', '.join(map(str, ns))}}} or {{{', '.join(map(str, ks))}}}",
        "exponent between the two largest sizes",
    ]
    return markdown_table(headers, rows)


def _linear_fit(cells: list[tuple[int, int]], times: list[float]) -> tuple[float, float]:
    """``t = a + b N K`` fitted by least squares on relative residuals ``(t - a - b N K) / t``
    (every cell counts alike, from 300 to 10^6 point-components): (a, b)."""
    x = np.array([n * k for n, k in cells], dtype=float)
    t = np.array(times)
    design = np.stack([1 / t, x / t], 1)
    (a, b), *_ = np.linalg.lstsq(design, np.ones_like(t), rcond=None)
    return float(a), float(b)


def linear_table(timing, methods: list[str], ns, ks) -> str:
    """``t = a + b N K`` per method (median over repeats of per-repeat fits), and the ratio
    of each method's ``b`` to that of the relaxed method of its backend."""
    fits = {}
    for method in methods:
        cells = [cell for cell in _cells(ns, ks) if (method, *cell) in timing.seconds]
        if len(cells) < 2:
            continue
        per_repeat = zip(*(timing.seconds[(method, *cell)] for cell in cells), strict=True)
        a, b = zip(*(_linear_fit(cells, list(ts)) for ts in per_repeat), strict=True)
        a, b = statistics.median(a), statistics.median(b)
        worst = max(
            abs(a + b * n * k - timing.median((method, n, k))) / timing.median((method, n, k))
            for n, k in cells
        )
        fits[method] = (a, b, worst)
    relaxed_of = {
        PYRO_RELAXED: PYRO_RELAXED,
        PYRO_ENUM: PYRO_RELAXED,
        NUMPYRO_RELAXED: NUMPYRO_RELAXED,
        NUMPYRO_ENUM: NUMPYRO_RELAXED,
    }
    rows = []
    for method, (a, b, worst) in fits.items():
        relaxed = fits.get(relaxed_of[method])
        rows.append(
            [
                method,
                f"{1e3 * a:.2f}",
                f"{1e9 * b:.1f}",
                "-" if relaxed is None else f"{relaxed[1] / b:.2f}",
                f"{100 * worst:.0f}%",
            ]
        )
    headers = [
        "method",
        "fixed cost a (CPU ms/step)",
        "marginal cost b (CPU ns per point x component)",
        "b(relaxed, same backend) / b(this)",
        "largest relative misfit (median time)",
    ]
    return markdown_table(headers, rows)


def main() -> None:
    options = parse_options(__doc__.splitlines()[0])
    warnings.filterwarnings("ignore", category=UserWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)
    import pyro
    import torch

    torch.distributions.Distribution.set_default_validate_args(False)
    pyro.enable_validation(False)
    module = import_numpyro_concrete()
    has_numpyro = not isinstance(module, str)
    no_funsor = funsor_status() if has_numpyro else None
    if has_numpyro:
        import numpyro

        numpyro.enable_validation(False)

    ns, ks = sizes(options)
    candidates: dict[tuple[str, int, int], Callable[[], object]] = {}
    for n, k in _cells(ns, ks):
        for name, step in pyro_steps(n, k).items():
            candidates[(name, n, k)] = step
        if has_numpyro and (n, k) in numpyro_cells(options):
            for name, step in numpyro_steps(n, k, enumerate_too=no_funsor is None).items():
                candidates[(name, n, k)] = step
    methods = list(dict.fromkeys(name for name, _, _ in candidates))
    print(f"  timing {len(candidates)} cases, interleaved", file=sys.stderr)
    timing = time_interleaved(candidates, options)

    print("## SVI step cost: Gaussian mixture, relaxed vs enumerated\n")
    print(
        f"One SVI step (Adam, lr {LR}) on N points with K components; relaxed: `relax` "
        f"(prior temperature {PRIOR_TEMPERATURE}) + `AutoRelaxed` (posterior temperature 2/3, "
        "N x K learnable logits) + `Trace_ELBO`; enumerated: `config_enumerate` + "
        "`TraceEnum_ELBO(max_plate_nesting=1)` + `AutoNormal` on `locs`. Pyro eager, NumPyro "
        "`jax.jit(svi.update)`; float32, validation off. All cases timed in one interleaved "
        "run; ratios are medians of per-repeat ratios of steps per second, "
        "**> 1 means the first-named is faster**.\n"
    )
    print(f"Environment: {environment(options)}.\n")
    if options.fast:
        print("**--fast: tiny sizes, a smoke test of the script; these numbers mean nothing.**\n")
    if not has_numpyro:
        print(f"{module}\n")
    elif no_funsor:
        print(f"{no_funsor}\n")
    print("### Steps per second, as ratios\n")
    print(ratio_table(timing, methods, ns, ks))
    print("\n### Scaling: exponent p of time per step ~ size^p\n")
    print(
        "Slope of log(time) against log(N) at fixed K, or log(K) at fixed N, per repeat; "
        "median over repeats. 0 means fixed overhead dominates, 1 linear cost.\n"
    )
    print(scaling_table(timing, methods, ns, ks))
    print("\n### Linear model: time per step ~ a + b N K\n")
    print(
        "Fit to every (N, K) cell a method ran, minimising relative residuals, per repeat; "
        "median over repeats. `b(relaxed)/b(this)` > 1: the relaxed step's cost grows "
        "faster with N K.\n"
    )
    print(linear_table(timing, methods, ns, ks))
    if options.fast:
        print(f"\n(--fast: NumPyro ran only at (N, K) = {numpyro_cells(options)})")


if __name__ == "__main__":
    main()
