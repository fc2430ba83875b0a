"""Throughput of rsample + log_prob, and of its gradient w.r.t. the logits, side by side.

    python benchmarks/throughput.py [--fast] [--threads N] [--repeats R] [--clock cpu|wall]

What is timed (float32, batch 4096 x n, temperature 0.5, validation off):

- ``fwd``:  build the distribution from the logits, ``x = rsample()``, ``log_prob(x)``;
- ``grad``: the same with logits that require grad, then ``d sum(log_prob(x)) / d logits``
  through both the sample (pathwise) and the density, the term a Concrete ELBO needs.

Against:

- torch: ours vs the built-in that a user would otherwise pick (``Concrete`` vs
  ``RelaxedOneHotCategorical``, ``ExpConcrete`` vs ``ExpRelaxedCategorical``,
  ``BinaryConcrete`` vs ``RelaxedBernoulli``; for the binary classes the 4096 x n logits
  are independent scalars), and vs the arithmetic ours performs written inline in eager
  torch (the eager floor: no distribution object, no logits normalisation, no boundary
  handling), so that ``ours/eager-floor`` is what the distribution layer costs;
- NumPyro, everything under ``jax.jit``: ours vs ``RelaxedBernoulliLogits`` (NumPyro has
  no relaxed categorical) and vs the bare jitted formula (the floor: the same
  arithmetic inline in ``jax.numpy``); for ``BinaryConcrete`` also the plain path
  ``log_prob(sample(key))`` without intermediates (``plain fwd`` / ``plain grad``), the
  one a model's prior takes when it scores a guide's sample.

Ratios are ``t(ours) / t(other)``, median over interleaved repeats: < 1 means ours is
faster.  Targets: ``ours/built-in <= 1.0`` and ``ours/floor <= 1.2`` (the floor target is
the jitted one; the eager torch floor is reported to show what the Python layer costs).
"""

import math
import sys
import warnings
from collections.abc import Callable

import torch
from common import (
    Options,
    environment,
    import_numpyro_concrete,
    markdown_table,
    parse_options,
    time_interleaved,
)

TEMPERATURE = 0.5
BUILTIN_TARGET = 1.0
FLOOR_TARGET = 1.2


def _verdict(met: bool) -> str:
    return "yes" if met else "**no**"


def sizes(options: Options) -> tuple[int, list[int]]:
    """(batch, category counts) of the benchmark."""
    return (64, [2]) if options.fast else (4096, [2, 10, 50, 1000])


# --------------------------------------------------------------------------- torch


def _torch_floors() -> dict[str, Callable]:
    """The arithmetic of each class inline in eager torch: ``logits -> (x, log p(x))``."""
    import torch.nn.functional as F

    def exp_concrete(logits: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n = logits.size(-1)
        gumbel = -torch.empty_like(logits).exponential_().log()
        y = ((logits + gumbel) / t).log_softmax(-1)
        scores = (logits - t * y).log_softmax(-1).sum(-1)
        return y, math.lgamma(n) + (n - 1) * t.log() + scores - y[..., -1]

    def concrete(logits: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n = logits.size(-1)
        gumbel = -torch.empty_like(logits).exponential_().log()
        y = ((logits + gumbel) / t).log_softmax(-1)
        scores = (logits - t * y).log_softmax(-1).sum(-1)
        return y.exp(), math.lgamma(n) + (n - 1) * t.log() + scores - y.sum(-1)

    def binary_concrete(logits: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        u = torch.rand_like(logits)
        y = (logits + u.log() - (-u).log1p()) / t
        s = logits - t * y
        log_p = t.log() + s - 2 * F.softplus(s) + F.softplus(y) + F.softplus(-y)
        return y.sigmoid(), log_p

    return {
        "Concrete": concrete,
        "ExpConcrete": exp_concrete,
        "BinaryConcrete": binary_concrete,
    }


def _torch_step(
    make: Callable,
    logits: torch.Tensor,
    temperature: torch.Tensor,
    op: str,
    floor: bool = False,
) -> Callable[[], object]:
    """One timed step: ``fwd`` (no grad) or ``grad`` (d sum log p / d logits).

    ``make`` is a distribution class, or with ``floor`` an inline ``(logits, t) -> (x, log p)``.
    """

    def log_prob(l: torch.Tensor) -> torch.Tensor:
        if floor:
            return make(l, temperature)[1]
        d = make(temperature, logits=l)
        return d.log_prob(d.rsample())

    if op == "fwd":

        def fwd() -> object:
            with torch.no_grad():
                return log_prob(logits)

        return fwd
    leaf = logits.clone().requires_grad_()

    def grad() -> object:
        return torch.autograd.grad(log_prob(leaf).sum(), leaf)

    return grad


def torch_table(options: Options) -> str:
    import pyro
    import torch
    import torch.distributions as td
    from torch.distributions.relaxed_categorical import ExpRelaxedCategorical

    import pyro_concrete

    torch.distributions.Distribution.set_default_validate_args(False)
    pyro.enable_validation(False)
    floors = _torch_floors()
    pairs = [
        (
            "Concrete",
            pyro_concrete.Concrete,
            "RelaxedOneHotCategorical",
            td.RelaxedOneHotCategorical,
        ),
        ("ExpConcrete", pyro_concrete.ExpConcrete, "ExpRelaxedCategorical", ExpRelaxedCategorical),
        ("BinaryConcrete", pyro_concrete.BinaryConcrete, "RelaxedBernoulli", td.RelaxedBernoulli),
    ]
    batch, ns = sizes(options)
    temperature = torch.tensor(TEMPERATURE)
    rows = []
    for name, ours_cls, builtin_name, builtin_cls in pairs:
        for n in ns:
            torch.manual_seed(0)
            logits = 3 * torch.randn(batch, n)
            for op in ("fwd", "grad"):
                candidates = {
                    "ours": _torch_step(ours_cls, logits, temperature, op),
                    "builtin": _torch_step(builtin_cls, logits, temperature, op),
                    "floor": _torch_step(floors[name], logits, temperature, op, floor=True),
                }
                timing = time_interleaved(candidates, options)
                lo, hi = timing.spread("ours", "builtin")
                vs_builtin = timing.ratio("ours", "builtin")
                rows.append(
                    [
                        f"{name} vs {builtin_name}",
                        n,
                        op,
                        vs_builtin,
                        f"{lo:.2f}-{hi:.2f}",
                        timing.ratio("ours", "floor"),
                        f"{1e3 * timing.median('ours'):.2f}",
                        _verdict(vs_builtin <= BUILTIN_TARGET),
                    ]
                )
                print(f"  torch {name} n={n} {op}: ours/builtin {vs_builtin:.2f}", file=sys.stderr)
    headers = [
        "ours vs torch built-in",
        "n",
        "op",
        "ours/torch time",
        "per-repeat range",
        "ours/eager-floor time",
        "ours CPU ms",
        "ours <= torch",
    ]
    return markdown_table(headers, rows)


# --------------------------------------------------------------------------- NumPyro


def _jax_floors() -> dict[str, Callable]:
    """The arithmetic of each class inline in ``jax.numpy``: ``(key, logits) -> (x, log p(x))``."""
    import jax
    import jax.numpy as jnp
    from jax.nn import log_softmax, softplus
    from jax.scipy.special import gammaln

    def exp_concrete(key: jax.Array, logits: jax.Array) -> tuple[jax.Array, jax.Array]:
        n, t = logits.shape[-1], TEMPERATURE
        y = log_softmax((logits + jax.random.gumbel(key, logits.shape)) / t, axis=-1)
        scores = log_softmax(logits - t * y, axis=-1).sum(-1)
        return y, gammaln(n) + (n - 1) * math.log(t) + scores - y[..., -1]

    def concrete(key: jax.Array, logits: jax.Array) -> tuple[jax.Array, jax.Array]:
        n, t = logits.shape[-1], TEMPERATURE
        y = log_softmax((logits + jax.random.gumbel(key, logits.shape)) / t, axis=-1)
        scores = log_softmax(logits - t * y, axis=-1).sum(-1)
        return jnp.exp(y), gammaln(n) + (n - 1) * math.log(t) + scores - y.sum(-1)

    def binary_concrete(key: jax.Array, logits: jax.Array) -> tuple[jax.Array, jax.Array]:
        t = TEMPERATURE
        y = (logits + jax.random.logistic(key, logits.shape)) / t
        s = logits - t * y
        log_p = math.log(t) + s - 2 * softplus(s) + softplus(y) + softplus(-y)
        return jax.nn.sigmoid(y), log_p

    return {
        "Concrete": concrete,
        "ExpConcrete": exp_concrete,
        "BinaryConcrete": binary_concrete,
    }


def _jitted(sample_and_score: Callable) -> tuple[Callable, Callable]:
    """``fwd(key, logits) -> (x, log p)`` and ``grad(key, logits) -> d sum(log p) / d logits``."""
    import jax

    fwd = jax.jit(sample_and_score)
    grad = jax.jit(jax.grad(lambda logits, key: sample_and_score(key, logits)[1].sum()))
    return fwd, lambda key, logits: grad(logits, key)


def _ready(fn: Callable, args: tuple) -> Callable[[], object]:
    """``fn(*args)``, waiting for JAX's asynchronous dispatch to finish."""
    import jax

    return lambda: jax.block_until_ready(fn(*args))


def numpyro_table(options: Options) -> str:
    import jax
    import numpyro
    import numpyro.distributions as nd

    numpyro_concrete = import_numpyro_concrete()
    if isinstance(numpyro_concrete, str):
        return numpyro_concrete

    numpyro.enable_validation(False)
    floors = _jax_floors()

    def library(make: Callable) -> Callable:
        """``(key, logits) -> (x, log p(x))`` the way NumPyro's inference scores a site:
        ``sample_with_intermediates``, then ``log_prob(x, intermediates)`` for a
        transformed distribution (the intermediates carry the exact log-space sample)."""

        def sample_and_score(key: jax.Array, logits: jax.Array) -> tuple[jax.Array, jax.Array]:
            d = make(TEMPERATURE, logits)
            if isinstance(d, nd.TransformedDistribution):
                x, intermediates = d.sample_with_intermediates(key)
                return x, d.log_prob(x, intermediates)
            x = d.sample(key)
            return x, d.log_prob(x)

        return sample_and_score

    def plain(make: Callable) -> Callable:
        """``(key, logits) -> (x, log p(x))`` the plain way: ``log_prob(sample(key))``,
        without intermediates (the path of a model's prior scoring a guide's sample)."""

        def sample_and_score(key: jax.Array, logits: jax.Array) -> tuple[jax.Array, jax.Array]:
            d = make(TEMPERATURE, logits)
            x = d.sample(key)
            return x, d.log_prob(x)

        return sample_and_score

    batch, ns = sizes(options)
    ours_plain = _jitted(plain(lambda t, logits: numpyro_concrete.BinaryConcrete(t, logits=logits)))
    builtin_plain = _jitted(plain(nd.RelaxedBernoulliLogits))
    builtin_fwd, builtin_grad = _jitted(library(nd.RelaxedBernoulliLogits))
    rows = []
    for name in ("Concrete", "ExpConcrete", "BinaryConcrete"):
        cls = getattr(numpyro_concrete, name)
        ours_fwd, ours_grad = _jitted(library(lambda t, logits, cls=cls: cls(t, logits=logits)))
        floor_fwd, floor_grad = _jitted(floors[name])
        has_builtin = name == "BinaryConcrete"
        for n in ns:
            args = (jax.random.PRNGKey(0), 3 * jax.random.normal(jax.random.PRNGKey(1), (batch, n)))
            for op, ours, floor, builtin in (
                ("fwd", ours_fwd, floor_fwd, builtin_fwd),
                ("grad", ours_grad, floor_grad, builtin_grad),
            ):
                candidates = {"ours": _ready(ours, args), "floor": _ready(floor, args)}
                if has_builtin:
                    candidates["builtin"] = _ready(builtin, args)
                timing = time_interleaved(candidates, options)
                vs_floor = timing.ratio("ours", "floor")
                lo, hi = timing.spread("ours", "floor")
                vs_builtin = timing.ratio("ours", "builtin") if has_builtin else None
                rows.append(
                    [
                        name,
                        n,
                        op,
                        "-" if vs_builtin is None else vs_builtin,
                        vs_floor,
                        f"{lo:.2f}-{hi:.2f}",
                        f"{1e3 * timing.median('ours'):.2f}",
                        "-" if vs_builtin is None else _verdict(vs_builtin <= BUILTIN_TARGET),
                        _verdict(vs_floor <= FLOOR_TARGET),
                    ]
                )
                print(f"  numpyro {name} n={n} {op}: ours/floor {vs_floor:.2f}", file=sys.stderr)
            plain_ops = zip(("plain fwd", "plain grad"), ours_plain, builtin_plain, strict=True)
            for op, ours, builtin in plain_ops if has_builtin else ():
                candidates = {"ours": _ready(ours, args), "builtin": _ready(builtin, args)}
                timing = time_interleaved(candidates, options)
                vs_builtin = timing.ratio("ours", "builtin")
                lo, hi = timing.spread("ours", "builtin")
                rows.append(
                    [
                        name,
                        n,
                        op,
                        vs_builtin,
                        "-",
                        f"{lo:.2f}-{hi:.2f} (built-in)",
                        f"{1e3 * timing.median('ours'):.2f}",
                        _verdict(vs_builtin <= BUILTIN_TARGET),
                        "-",
                    ]
                )
                print(
                    f"  numpyro {name} n={n} {op}: ours/builtin {vs_builtin:.2f}", file=sys.stderr
                )
    headers = [
        "ours (jit)",
        "n",
        "op",
        "ours/RelaxedBernoulliLogits time",
        "ours/jitted-floor time",
        "per-repeat range (floor)",
        "ours CPU ms",
        "ours <= built-in",
        f"ours <= {FLOOR_TARGET}x floor",
    ]
    return markdown_table(headers, rows)


def main() -> None:
    options = parse_options(__doc__.splitlines()[0])
    warnings.filterwarnings("ignore", category=UserWarning)
    batch, _ = sizes(options)
    import_numpyro_concrete()  # imports jax (if present) so that the environment names it
    print("## Throughput: rsample + log_prob (`fwd`) and its gradient w.r.t. logits (`grad`)\n")
    print(
        f"float32, batch {batch} x n, temperature {TEMPERATURE}, validation off "
        "(`torch.distributions.Distribution.set_default_validate_args(False)`, "
        "`pyro.enable_validation(False)`, `numpyro.enable_validation(False)`). "
        "Ratios are t(ours)/t(other), median of interleaved per-repeat ratios: "
        "**< 1 means ours is faster**. The distribution is built inside the timed step. "
        "NumPyro's transformed classes (ours and `RelaxedBernoulliLogits`) are scored the way "
        "NumPyro's inference scores a site: `sample_with_intermediates`, then "
        "`log_prob(x, intermediates)`.\n"
    )
    print(f"Environment: {environment(options)}.\n")
    if options.fast:
        print("**--fast: tiny sizes, a smoke test of the script; these numbers mean nothing.**\n")
    print("### PyTorch / Pyro (eager)\n")
    print(torch_table(options))
    print("\n### NumPyro (everything under `jax.jit`)\n")
    print(numpyro_table(options))


if __name__ == "__main__":
    main()
