"""Numerics sweep: how often log_prob and its gradient are non-finite, and how wrong.

    python benchmarks/numerics.py [--fast]

Float32, logits ~ N(0, 3^2) (one draw per cell, shared by every library), temperature
in {1, 0.5, 0.1, 0.05, 0.01}, n in {2, 10, 50}; every distribution scores **its own
samples** (``log_prob(rsample())``, what a Concrete ELBO computes).  Validation is off:
with torch's default validation on, ``RelaxedOneHotCategorical.log_prob`` raises
``ValueError`` on its own samples at low temperature (a coordinate underflows to 0).

1. Fraction of events with a non-finite ``log_prob``, and with a non-finite gradient
   ``d log_prob(rsample()) / d logits`` (pathwise through the sample plus the density;
   an event counts as bad if any of its n partial derivatives is).  For the binary
   classes the n logits of a row are n independent scalars, each an event.
2. Binary Concrete at the boundary: the fraction of samples that torch/NumPyro clamp
   into ``[tiny, 1 - eps]`` (``x != sigmoid(y)``) or that round to exactly 0 or 1 (ours
   do not clamp), the fraction whose sample has zero pathwise gradient ``dx / d logits``,
   and the error of ``log_prob`` in nats against a float64 reference evaluated at the
   exact, unclamped point ``x = sigmoid(y)``, ``y`` the float32 logit the sampler drew.

NumPyro's inference (``log_density``, ``Trace_ELBO``) scores a transformed site with the
sample's intermediates, ``log_prob(x, intermediates)``; a user who calls ``log_prob(x)``
gets the inverse map of ``x`` instead.  Both paths are reported.  The NumPyro programs
are jitted with XLA's backend optimisation off (compile time dominates here; the
arithmetic, and so the counts, do not depend on it).
"""

import math
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
)

TEMPERATURES = (1.0, 0.5, 0.1, 0.05, 0.01)

# A runner maps (temperature, float32 logits, seed) to, for each distribution label,
# per-event boolean arrays (log_prob non-finite, gradient non-finite).
Runner = Callable[[float, np.ndarray, int], dict[str, tuple[np.ndarray, np.ndarray]]]
# A boundary runner maps (temperature, float32 scalar logits, seed) to table cells per label.
BoundaryRunner = Callable[[float, np.ndarray, int], dict[str, list[str]]]


def category_counts(options: Options) -> tuple[int, ...]:
    return (2,) if options.fast else (2, 10, 50)


def rows_per_cell(options: Options) -> int:
    return 64 if options.fast else 20000


def binary_samples(options: Options) -> int:
    return 2000 if options.fast else 200000


def _percent(fraction: float) -> str:
    if fraction == 0:
        return "0"
    return f"{100 * fraction:.1f}%" if fraction >= 0.001 else f"{100 * fraction:.2f}%"


def _nats(value: float) -> str:
    if not np.isfinite(value):
        return str(value)
    return f"{value:.2g}" if value < 100 else f"{value:.0f}"


def _log_binary_concrete_64(logits: np.ndarray, temperature: float, y: np.ndarray) -> np.ndarray:
    """Float64 reference (App. B Eq. 21) of the Binary Concrete log density at ``x = sigmoid(y)``:
    ``log lambda + s - 2 softplus(s) + softplus(y) + softplus(-y)``, ``s = log alpha - lambda y``.
    """
    logits, y = logits.astype(np.float64), y.astype(np.float64)
    s = logits - temperature * y
    return (
        math.log(temperature)
        + s
        - 2 * np.logaddexp(0.0, s)
        + np.logaddexp(0.0, y)
        + np.logaddexp(0.0, -y)
    )


def _boundary_cells(boundary: np.ndarray, zero_grad: np.ndarray, error: np.ndarray) -> list[str]:
    error = np.abs(error)  # inf and nan stay what they are
    return [
        _percent(boundary.mean()),
        _percent(zero_grad.mean()),
        _nats(error.mean()),
        _nats(error[boundary].mean()) if boundary.any() else "-",
        _nats(error.max()),
    ]


# --------------------------------------------------------------------------- torch


def torch_runner() -> Runner:
    """Ours and torch's relaxed classes, each scoring its own samples."""
    import torch
    import torch.distributions as td
    from torch.distributions.relaxed_bernoulli import LogitRelaxedBernoulli
    from torch.distributions.relaxed_categorical import ExpRelaxedCategorical

    import pyro_concrete as pc

    cases = {
        "pyro_concrete Concrete": (pc.Concrete, True),
        "torch RelaxedOneHotCategorical": (td.RelaxedOneHotCategorical, True),
        "pyro_concrete ExpConcrete": (pc.ExpConcrete, True),
        "torch ExpRelaxedCategorical": (ExpRelaxedCategorical, True),
        "pyro_concrete BinaryConcrete": (pc.BinaryConcrete, False),
        "torch RelaxedBernoulli": (td.RelaxedBernoulli, False),
        "pyro_concrete LogitBinaryConcrete": (pc.LogitBinaryConcrete, False),
        "torch LogitRelaxedBernoulli": (LogitRelaxedBernoulli, False),
    }

    def run(temperature: float, logits: np.ndarray, seed: int) -> dict:
        out = {}
        for label, (cls, categorical) in cases.items():
            torch.manual_seed(seed)
            leaf = torch.from_numpy(logits).requires_grad_()
            d = cls(torch.tensor(temperature), logits=leaf)
            log_p = d.log_prob(d.rsample())
            (grad,) = torch.autograd.grad(log_p.sum(), leaf)
            bad_grad = ~grad.isfinite()
            out[label] = (
                (~log_p.isfinite()).numpy(),
                (bad_grad.any(-1) if categorical else bad_grad).numpy(),
            )
        return out

    return run


def torch_boundary(temperature: float, logits: np.ndarray, seed: int) -> dict[str, list[str]]:
    """Boundary statistics of ours vs torch's RelaxedBernoulli (see module docstring)."""
    import torch
    import torch.distributions as td

    import pyro_concrete

    out = {}
    for label, cls in (
        ("torch RelaxedBernoulli", td.RelaxedBernoulli),
        ("pyro_concrete BinaryConcrete", pyro_concrete.BinaryConcrete),
    ):
        leaf = torch.from_numpy(logits).requires_grad_()
        d = cls(torch.tensor(temperature), logits=leaf)
        torch.manual_seed(seed)
        x = d.rsample()
        log_p = d.log_prob(x)  # first: ours scores the sample it just drew (cache hit)
        torch.manual_seed(seed)
        y = d.base_dist.rsample().detach()  # the same draw: the exact logit of x
        if not torch.equal(x, d.transforms[0](y)):
            raise AssertionError(f"{label}: replaying the seed did not reproduce the sample")
        (dx,) = torch.autograd.grad(x.sum(), leaf)
        boundary = (x != y.sigmoid()) | (x == 0) | (x == 1)
        error = log_p.detach().numpy().astype(np.float64) - _log_binary_concrete_64(
            logits, temperature, y.numpy()
        )
        out[label] = _boundary_cells(boundary.numpy(), (dx == 0).numpy(), error)
    return out


# --------------------------------------------------------------------------- NumPyro


def numpyro_runner(module: object) -> Runner:
    """Ours (both scoring paths for transformed classes) and RelaxedBernoulliLogits.

    All cases run in one jitted program per logits shape (temperature is traced).
    """
    import jax
    import jax.numpy as jnp
    import numpyro.distributions as nd

    def builtin(temperature: jax.Array, logits: jax.Array) -> nd.Distribution:
        return nd.RelaxedBernoulliLogits(temperature, logits)

    cases: dict[str, tuple[Callable, bool, bool]] = {}  # label -> (make, categorical, inter.)
    for name, categorical, transformed in (
        ("Concrete", True, True),
        ("ExpConcrete", True, False),
        ("BinaryConcrete", False, True),
        ("LogitBinaryConcrete", False, False),
    ):
        cls = getattr(module, name)
        make = lambda t, l, cls=cls: cls(t, logits=l)  # noqa: E731
        if transformed:
            cases[f"numpyro_concrete {name}: log_prob(x, intermediates)"] = (
                make,
                categorical,
                True,
            )
            cases[f"numpyro_concrete {name}: log_prob(x)"] = (make, categorical, False)
        else:
            cases[f"numpyro_concrete {name}"] = (make, categorical, False)
    cases["numpyro RelaxedBernoulliLogits: log_prob(x, intermediates)"] = (builtin, False, True)
    cases["numpyro RelaxedBernoulliLogits: log_prob(x)"] = (builtin, False, False)

    def value_and_grad(
        make: Callable, inter: bool, key: jax.Array, t: jax.Array, logits: jax.Array
    ):
        def log_p(l: jax.Array) -> jax.Array:
            d = make(t, l)
            if inter:
                x, intermediates = d.sample_with_intermediates(key)
                return d.log_prob(x, intermediates)
            return d.log_prob(d.sample(key))

        value, vjp = jax.vjp(log_p, logits)
        return value, vjp(jnp.ones_like(value))[0]

    @jax.jit
    def all_cases(key: jax.Array, t: jax.Array, logits: jax.Array) -> dict:
        return {
            label: value_and_grad(make, inter, key, t, logits)
            for label, (make, _, inter) in cases.items()
        }

    def run(temperature: float, logits: np.ndarray, seed: int) -> dict:
        results = all_cases(jax.random.PRNGKey(seed), jnp.float32(temperature), jnp.asarray(logits))
        out = {}
        for label, (_, categorical, _) in cases.items():  # jit sorted the dict: restore order
            value, grad = results[label]
            bad_grad = ~np.isfinite(np.asarray(grad))
            out[label] = (
                ~np.isfinite(np.asarray(value)),
                bad_grad.any(-1) if categorical else bad_grad,
            )
        return out

    return run


def numpyro_boundary(module: object) -> BoundaryRunner:
    """Boundary statistics of ours vs NumPyro's RelaxedBernoulliLogits, both scoring paths."""
    import jax
    import jax.numpy as jnp
    import numpyro.distributions as nd

    makers = {
        "numpyro RelaxedBernoulliLogits": lambda t, l: nd.RelaxedBernoulliLogits(t, l),
        "numpyro_concrete BinaryConcrete": lambda t, l: module.BinaryConcrete(t, logits=l),
    }

    @jax.jit
    def draws(key: jax.Array, t: jax.Array, logits: jax.Array) -> dict:
        out = {}
        for label, make in makers.items():
            d = make(t, logits)
            x, intermediates = d.sample_with_intermediates(key)
            y = d.base_dist.sample(key)  # the same draw: the exact logit of x
            dx = jax.grad(lambda l, make=make: make(t, l).sample(key).sum())(logits)
            out[label] = {
                "x": x,
                "replayed": d.transforms[0](y),
                "exact": jax.nn.sigmoid(y),
                "y": y,
                "dx": dx,
                "log_prob(x, intermediates)": d.log_prob(x, intermediates),
                "log_prob(x)": d.log_prob(x),
            }
        return out

    def run(temperature: float, logits: np.ndarray, seed: int) -> dict[str, list[str]]:
        results = jax.device_get(
            draws(jax.random.PRNGKey(seed), jnp.float32(temperature), jnp.asarray(logits))
        )
        out = {}
        for label in makers:
            r = results[label]
            if not np.array_equal(r["replayed"], r["x"]):
                raise AssertionError(f"{label}: the base sample does not reproduce the sample")
            x = r["x"]
            boundary = (x != r["exact"]) | (x == 0) | (x == 1)
            reference = _log_binary_concrete_64(logits, temperature, r["y"])
            for path in ("log_prob(x, intermediates)", "log_prob(x)"):
                error = r[path].astype(np.float64) - reference
                out[f"{label}: {path}"] = _boundary_cells(boundary, r["dx"] == 0, error)
        return out

    return run


# --------------------------------------------------------------------------- tables


def non_finite_tables(runners: list[Runner], options: Options) -> tuple[str, str]:
    """Markdown tables of the non-finite fractions of log_prob and of its gradient."""
    rng = np.random.default_rng(0)
    cells = [(t, n) for t in TEMPERATURES for n in category_counts(options)]
    rows = rows_per_cell(options)
    lp_rows: dict[str, list[str]] = {}
    grad_rows: dict[str, list[str]] = {}
    for seed, (t, n) in enumerate(cells):
        logits = (3 * rng.standard_normal((rows, n))).astype(np.float32)
        for runner in runners:
            for label, (bad_lp, bad_grad) in runner(t, logits, seed).items():
                lp_rows.setdefault(label, [label]).append(_percent(bad_lp.mean()))
                grad_rows.setdefault(label, [label]).append(_percent(bad_grad.mean()))
        print(f"  non-finite: T={t:g} n={n} done", file=sys.stderr)
    headers = ["distribution", *(f"T={t:g} n={n}" for t, n in cells)]
    return (
        markdown_table(headers, list(lp_rows.values())),
        markdown_table(headers, list(grad_rows.values())),
    )


def boundary_table(runners: list[BoundaryRunner], options: Options) -> str:
    rng = np.random.default_rng(1)
    logits = (3 * rng.standard_normal(binary_samples(options))).astype(np.float32)
    by_label: dict[str, list[list[str]]] = {}
    for seed, t in enumerate(TEMPERATURES):
        for runner in runners:
            for label, cells in runner(t, logits, 100 + seed).items():
                by_label.setdefault(label, []).append([label, f"{t:g}", *cells])
        print(f"  boundary: T={t:g} done", file=sys.stderr)
    headers = [
        "distribution",
        "T",
        "x clamped or rounded to 0/1",
        "dx/dlogits = 0",
        "mean abs log_prob error (nats)",
        "mean error on boundary",
        "max error",
    ]
    return markdown_table(headers, [row for rows in by_label.values() for row in rows])


def main() -> None:
    options = parse_options(__doc__.splitlines()[0], fast_compile=True)
    warnings.filterwarnings("ignore", category=UserWarning)
    import pyro
    import torch

    torch.distributions.Distribution.set_default_validate_args(False)
    pyro.enable_validation(False)
    runners: list[Runner] = [torch_runner()]
    boundary_runners: list[BoundaryRunner] = [torch_boundary]
    module = import_numpyro_concrete()
    if not isinstance(module, str):
        import numpyro

        numpyro.enable_validation(False)
        runners.append(numpyro_runner(module))
        boundary_runners.append(numpyro_boundary(module))

    print("## Numerics: non-finite log_prob and gradients, boundary errors (float32)\n")
    print(
        f"logits ~ N(0, 3^2), {rows_per_cell(options)} rows of n logits per cell (for the "
        "binary classes each of the n logits is an independent event); every distribution "
        "scores its own samples; validation off. Boundary table: "
        f"{binary_samples(options)} scalar logits per temperature.\n"
    )
    print(f"Environment: {environment(options, timing=False)}.\n")
    if options.fast:
        print("**--fast: tiny sizes, a smoke test of the script; these numbers mean nothing.**\n")
    if isinstance(module, str):
        print(f"{module}\n")
    log_prob_table, grad_table = non_finite_tables(runners, options)
    print("### Fraction of non-finite log_prob of own samples\n")
    print(log_prob_table)
    print("\n### Fraction of non-finite gradients d log_prob(rsample()) / d logits\n")
    print(grad_table)
    print("\n### Binary Concrete at the boundary: clamping, dead gradients, log_prob error\n")
    print(boundary_table(boundary_runners, options))


if __name__ == "__main__":
    main()
