"""The estimators at equal model evaluations on the sigmoid belief net: variance and step time.

    python benchmarks/multi_sample.py [--fast] [--threads N] [--steps N] [--hidden H]

NumPyro, every step under ``jax.jit``; the SBN 200H-784V of ``problems.py`` (with
``--hidden 200``, the non-linear 200H~784V: two tanh layers of 200 units in the decoder and
the encoder) on 50 training images of binarized MNIST (``load_binarized_mnist()``).  Rows,
grouped by the number of samples per data point: DisARM's antithetic pair against RLOO,
double control variates and RODEO at ``K = 2`` (the pair is RLOO's ``K = 2`` coupled
antithetically), the three at ``K = 3``, and REBAR (one sample, two relaxed evaluations).  Per row:

- **model passes / point**: how many times one step evaluates the model per data point
  (double CV and RODEO evaluate it at each ``b_k`` a second time, as a real-valued point,
  for its derivative ``d_k``; REBAR at two relaxed points);
- **variance**: the per-draw variance of the estimate of the encoder's gradient, summed
  over the encoder's parameters, with its standard error (``--draws`` draws), at two
  points: the initial parameters, and the parameters after ``--steps`` steps of training
  with DisARM (Adam, learning rate 1e-3, the same minibatch sequence for everyone).  At
  each point, each estimator's own tuned quantities (double CV's ``alpha``, RODEO's weights
  and network, REBAR's ``eta`` and temperature) are first tuned for ``TUNE_STEPS`` steps on
  the variance they minimise, the model and guide held fixed;
- **time / relaxed step**: one ``svi.update`` over one relaxed ``Trace_ELBO`` step,
  measured side by side (``common.py``).

``--fast``: 20 latent units, 8 images, few steps and draws, three of the rows: a smoke test.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
from common import (
    environment,
    import_numpyro_concrete,
    markdown_table,
    parse_options,
    quiet_library_warnings,
    time_interleaved,
)
from estimators import images

#: the rows: (label, class name, K, model passes per data point)
ROWS = (
    ("DisARM (pair)", "DisarmELBO", 1, 2),
    ("RLOO K=2", "RlooELBO", 2, 2),
    ("double CV K=2", "DoubleCvELBO", 2, 4),
    ("RODEO K=2", "RodeoELBO", 2, 4),
    ("RLOO K=3", "RlooELBO", 3, 3),
    ("double CV K=3", "DoubleCvELBO", 3, 6),
    ("RODEO K=3", "RodeoELBO", 3, 6),
    ("REBAR", "RebarELBO", 1, 3),
)
TUNE_STEPS = 300
#: the rows of ``--fast``: one of each estimator class that no other row's code path covers
FAST_ROWS = ("DisARM (pair)", "double CV K=2", "RODEO K=3")


def _loss(nc, name: str, k: int):
    cls = getattr(nc, name)
    return cls(num_particles=k) if name in ("RlooELBO", "DoubleCvELBO", "RodeoELBO") else cls()


def _trained(nc, sbn, x, steps: int, batch: int) -> dict:
    """The SBN's parameters after ``steps`` DisARM steps on minibatches of ``x``."""
    import jax
    from numpyro.infer import SVI
    from numpyro.optim import Adam

    svi = SVI(sbn.model, sbn.guide, Adam(1e-3), nc.DisarmELBO())
    state = svi.init(jax.random.PRNGKey(0), x[:batch])
    update = jax.jit(svi.update)
    order = np.random.default_rng(0).integers(0, len(x) - batch + 1, steps)
    for start in order:
        state, _ = update(state, x[start : start + batch])
    return svi.get_params(state)


def _variances(sbn, loss, points: list[dict], x, draws: int, tune_steps: int) -> list[str]:
    """At each point of ``points`` (the model's and guide's parameters, held fixed): tune
    ``loss``'s own quantities, then the variance of the encoder's gradient estimate over
    ``draws`` draws, summed over the encoder's parameters, with its standard error (each
    program compiled once, the points its arguments).

    The sum of per-coordinate variances is the mean of ``s_i = |g_i - mean(g)|^2`` over
    the draws; its standard error is that of a mean, ``std(s) / sqrt(draws)``."""
    import jax
    import jax.numpy as jnp
    from numpyro.infer import SVI
    from numpyro.optim import Adam

    guide = loss.tunable(sbn.guide)
    svi = SVI(sbn.model, guide, Adam(0.0), loss)
    own = svi.get_params(svi.init(jax.random.PRNGKey(2), x))
    tuned = sorted(set(own) - set(points[0]))
    names = [k for k in points[0] if k.startswith("encoder")]
    optim = Adam(1e-2)

    def objective(key, params):
        return loss.loss(key, params, sbn.model, guide, x)

    @jax.jit
    def tune(key, state, fixed):
        grads = jax.grad(lambda t: objective(key, {**fixed, **t}))(optim.get_params(state))
        return optim.update(grads, state)

    @jax.jit
    def grads(keys, params):
        def one(key):
            g = jax.grad(objective, argnums=1)(key, params)
            return jnp.concatenate([g[k].ravel() for k in names])

        return jax.vmap(one)(keys)

    out = []
    for fixed in points:
        state = optim.init({k: own[k] for k in tuned})
        for key in jax.random.split(jax.random.PRNGKey(3), tune_steps if tuned else 0):
            state = tune(key, state, fixed)
        draws_ = grads(
            jax.random.split(jax.random.PRNGKey(4), draws), {**fixed, **optim.get_params(state)}
        )
        spread = np.sum(np.square(np.asarray(draws_ - draws_.mean(0), np.float64)), 1)
        se = spread.std(ddof=1) / np.sqrt(len(spread))
        out.append(f"{spread.mean():.3g} ± {100 * se / spread.mean():.1f}%")
    return out


def rows(
    x: np.ndarray, latents: int, hidden: int | None, draws: int, steps: int, options
) -> list[list]:
    import jax
    import jax.numpy as jnp
    from numpyro.infer import SVI, Trace_ELBO
    from numpyro.optim import Adam

    import numpyro_concrete as nc
    from numpyro_concrete.problems import SigmoidBeliefNet

    batch, tune_steps = (8, 10) if options.fast else (50, TUNE_STEPS)
    chosen = [r for r in ROWS if r[0] in FAST_ROWS] if options.fast else list(ROWS)
    data = jnp.asarray(x)
    pixel_logits = jax.scipy.special.logit(jnp.clip(data.mean(0), 1e-3, 1 - 1e-3))
    sbn = SigmoidBeliefNet(latents=(latents,), hidden=hidden, pixel_logits=pixel_logits)
    first = data[:batch]
    plain = SVI(sbn.model, sbn.guide, Adam(0.0), Trace_ELBO())
    points = {
        "init": plain.get_params(plain.init(jax.random.PRNGKey(0), first)),
        "trained": _trained(nc, sbn, data, steps, batch),
    }
    steppers = {}
    relaxed = (nc.relax(sbn.model, 0.5), nc.relax(sbn.guide, 2 / 3), Trace_ELBO())
    for label, (model, guide, loss) in {
        "relaxed": relaxed,
        **{r[0]: (sbn.model, sbn.guide, _loss(nc, r[1], r[2])) for r in chosen},
    }.items():
        guide = loss.tunable(guide) if hasattr(loss, "tunable") else guide
        svi = SVI(model, guide, Adam(1e-3), loss)
        box = [svi.init(jax.random.PRNGKey(0), first)]
        update = jax.jit(svi.update)

        def step(box=box, update=update):
            box[0], value = update(box[0], first)
            value.block_until_ready()

        steppers[label] = step
    timing = time_interleaved(steppers, options)
    out = []
    for label, name, k, passes in chosen:
        loss = _loss(nc, name, k)
        variances = _variances(sbn, loss, list(points.values()), first, draws, tune_steps)
        out.append([label, passes, *variances, timing.ratio(label, "relaxed")])
    return out


def main() -> None:
    own = argparse.ArgumentParser(add_help=False)
    own.add_argument("--steps", type=int, default=10_000, help="DisARM training steps")
    own.add_argument(
        "--hidden", type=int, default=None, help="tanh units per layer (default: linear net)"
    )
    own.add_argument("--draws", type=int, default=400, help="draws per variance")
    known, rest = own.parse_known_args()
    options = parse_options(__doc__.splitlines()[0], rest)
    quiet_library_warnings()
    missing = import_numpyro_concrete()
    if isinstance(missing, str):
        print(missing)
        return
    latents, batch, draws = (20, 8, 16) if options.fast else (200, 50, known.draws)
    steps = 20 if options.fast else known.steps
    x = images(max(batch, 1000 if not options.fast else batch))
    net = f"{latents}H-784V" if known.hidden is None else f"{latents}H~784V ({known.hidden} tanh)"
    print(f"## The estimators at equal model evaluations: SBN {net}, NumPyro\n")
    if options.fast:
        print("**--fast: 20 latent units, 8 images, 16 draws: a smoke test.**\n")
    print(
        f"{batch} images per step, {draws} draws per variance (± its standard error), each "
        "estimator's own "
        f"quantities tuned for {10 if options.fast else TUNE_STEPS} steps first; "
        f"trained: {steps} DisARM steps.\n"
    )
    headers = [
        "estimator",
        "model passes / point",
        "variance at init",
        f"variance after {steps} steps",
        "time / relaxed step",
    ]
    print(markdown_table(headers, rows(x, latents, known.hidden, draws, steps, options)))
    print(f"\n{environment(options)}")


if __name__ == "__main__":
    main()
