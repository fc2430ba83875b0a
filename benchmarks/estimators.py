"""Estimators of the discrete ELBO's gradient on the sigmoid belief net: step time and variance.

    python benchmarks/estimators.py [--fast] [--threads N]

Reads binarized MNIST with ``load_binarized_mnist()`` (``CONCRETE_MNIST``, or a cached
download).  The model is ``SigmoidBeliefNet(latents=(200,), hidden=None)`` of ``problems.py``
(200H-784V, linear, the paper's Table 1 row), on a minibatch of training images, at its
initial parameters.
For each estimator (``RebarELBO``, ``RelaxELBO``, ``DisarmELBO``, ``VimcoELBO(K=5)``, the
score function ``TraceGraph_ELBO``) and the relaxed ``Trace_ELBO`` step the relaxation
trains with, in each backend:

- **time / relaxed step**: the median over interleaved repeats of the ratio of one SVI
  step (Pyro: ``svi.step``, eager; NumPyro: ``jax.jit(svi.update)``) to one relaxed
  ``Trace_ELBO`` step of the same backend, measured side by side (``common.py``);
- **variance**: the per-draw variance of the estimate of the encoder's gradient, summed
  over the encoder's parameters (one draw = one step's estimate), at the initial point;
- **variance x time**: their product, relative to the plain score function's: the
  variance left after equal compute, the figure of merit (< 1: better);
- **library / by hand**: the median ratio of one step of the library's estimator to one
  step of the same estimator written by hand with the PPL's generic machinery
  (``by_hand.py``: traces of model and guide, log-densities per data point, a surrogate;
  the same optimiser around both), and the range of the per-repeat ratios.  REBAR by
  hand has fixed ``eta`` and temperature and is compared with ``RebarELBO(tune=False)``;
  RELAX by hand would be REBAR by hand plus a learned term and the second-order tuning
  step, so it has no row of its own; the score function's library side is the PPL's own
  ``TraceGraph_ELBO``.  In Pyro, also the same for ``vectorize_particles=True`` (NumPyro's
  default), against the same hand-written step: VIMCO's K samples in one pass, DisARM's
  antithetic pair in one pass of model and guide, REBAR's two relaxed points in one pass.

In Pyro, also each estimator's **milliseconds per step** (loss, backward and an Adam step:
``SVI.step``) against a *floor*, the same estimator written directly in torch on the net's
``nn.Linear`` encoder and decoder with one ``torch.optim.Adam`` (``floors_torch.py``; REBAR's
and RELAX's relaxed points, DisARM's pair and the ``K`` samples each in one decoder call), with
Pyro's and torch's validation on for the library (their defaults): the median and range of
each over the repeats and of the per-repeat ratio library / floor, ``RebarELBO(tune=False)``,
``RelaxELBO``, ``DisarmELBO``, ``VimcoELBO`` and ``RlooELBO`` (``K = 5``), looped and with
``vectorize_particles=True``.

Pyro also has the score function with its decaying-average baseline (``TraceGraph_ELBO``
with ``infer={"baseline": ...}`` on the guide's sites, warmed up on the same batch first);
NumPyro's ``TraceGraph_ELBO`` has no baselines.

Validation (torch's argument checks, Pyro's) is off but for the floor table.  The relaxed
gradient is biased for the discrete objective (the others are unbiased), so its variance is
listed for scale only.  ``--fast``: 20 latent units, 8 images, a few draws: a smoke test, not a
measurement.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
from common import (
    environment,
    markdown_table,
    parse_options,
    quiet_library_warnings,
    time_interleaved,
)

ESTIMATORS = ("RebarELBO", "RelaxELBO", "DisarmELBO", "VimcoELBO", "score function")
BASELINE = "score function + baseline"
VIMCO_K = 5
#: the library step each hand-written estimator is timed against, where not its namesake
UNTUNED = {"RebarELBO": "RebarELBO(tune=False)"}
#: Pyro's vectorised steps, timed against the same hand-written ones
VECTORIZED = {
    "RebarELBO": "RebarELBO(tune=False, vectorize_particles=True)",
    "DisarmELBO": "DisarmELBO(vectorize_particles=True)",
    "VimcoELBO": "VimcoELBO(vectorize_particles=True)",
}


def _by_hand(name: str) -> str:
    return f"{name} by hand"


def versus_by_hand(timing, names, library=UNTUNED) -> dict[str, tuple[float, float, float]]:
    """``name -> (median, smallest, largest)`` per-repeat ratio of the library's step
    (``library[name]``, else ``name``) to the step written by hand, for the names timed."""
    out = {}
    for name in names:
        step = library.get(name, name)
        if step in timing.seconds:
            out[name] = (timing.ratio(step, _by_hand(name)), *timing.spread(step, _by_hand(name)))
    return out


def images(n: int) -> np.ndarray:
    from pyro_concrete.datasets import load_binarized_mnist

    train = load_binarized_mnist()["train"]
    train = np.asarray(train, np.float32)
    return train[np.random.default_rng(0).permutation(len(train))[:n]]


def pyro_rows(x: np.ndarray, latents: int, draws: int, options) -> dict[str, tuple]:
    """``name -> (time ratio, variance, library / by hand, vectorised library / by hand)``
    in Pyro (each ratio: median, smallest, largest; ``None`` where not timed)."""
    import by_hand
    import pyro
    import torch
    from pyro import poutine
    from pyro.infer import SVI, Trace_ELBO, TraceGraph_ELBO

    import pyro_concrete as pc
    from pyro_concrete.problems import SigmoidBeliefNet

    x = torch.tensor(x)
    pixel_logits = torch.logit(x.mean(0).clamp(1e-3, 1 - 1e-3))
    sbn = SigmoidBeliefNet(latents=(latents,), hidden=None, pixel_logits=pixel_logits)
    losses = _losses(pc, {"score function": TraceGraph_ELBO()})
    programs = {name: (sbn.model, sbn.guide, loss) for name, loss in losses.items()}
    programs["relaxed"] = (pc.relax(sbn.model, 0.5), pc.relax(sbn.guide, 2 / 3), Trace_ELBO())
    baseline = {"baseline": {"use_decaying_avg_baseline": True, "baseline_beta": 0.9}}
    with_baseline = poutine.infer_config(
        sbn.guide, lambda site: baseline if site["type"] == "sample" else {}
    )
    programs[BASELINE] = (sbn.model, with_baseline, TraceGraph_ELBO())
    state = {k: v.clone() for k, v in sbn.state_dict().items()}
    svis = {
        name: SVI(model, guide, pyro.optim.Adam({"lr": 0.0}), loss)
        for name, (model, guide, loss) in programs.items()
    }
    svis[UNTUNED["RebarELBO"]] = SVI(
        sbn.model, sbn.guide, pyro.optim.Adam({"lr": 0.0}), pc.RebarELBO(tune=False)
    )
    vectorized = {
        "RebarELBO": pc.RebarELBO(tune=False, vectorize_particles=True),
        "DisarmELBO": pc.DisarmELBO(vectorize_particles=True),
        "VimcoELBO": pc.VimcoELBO(num_particles=VIMCO_K, vectorize_particles=True),
    }
    for name, loss in vectorized.items():
        svis[VECTORIZED[name]] = SVI(sbn.model, sbn.guide, pyro.optim.Adam({"lr": 0.0}), loss)
    hand = by_hand.pyro_estimators(VIMCO_K)
    for name, fn in hand.items():
        optim = pyro.optim.Adam({"lr": 0.0})
        svis[_by_hand(name)] = SVI(sbn.model, sbn.guide, optim, loss=fn, loss_and_grads=fn)
    timing = time_interleaved(
        {name: (lambda s=svi: s.step(x)) for name, svi in svis.items()}, options
    )
    versus = versus_by_hand(timing, hand)
    versus_vectorized = versus_by_hand(timing, VECTORIZED, VECTORIZED)
    encoder = list(sbn.encoder.parameters())
    out = {}
    for name, (model, guide, loss) in programs.items():
        sbn.load_state_dict(state)
        grads = []
        for draw in range(-draws // 4 if name == BASELINE else 0, draws):  # baseline warm-up
            for p in sbn.parameters():
                p.grad = None
            loss.loss_and_grads(model, guide, x)
            if draw >= 0:
                grads.append(torch.cat([p.grad.reshape(-1) for p in encoder]).numpy().copy())
        variance = float(np.var(grads, 0).sum())
        ratio = timing.ratio(name, "relaxed")
        out[name] = (ratio, variance, versus.get(name), versus_vectorized.get(name))
    return out


#: the library steps timed against a plain-torch floor (``floors_torch.py``): by name, the
#: floor's name and the loss; the vectorised steps against the same floors
FLOORED = {
    "RebarELBO(tune=False)": ("RebarELBO(tune=False)", lambda pc: pc.RebarELBO(tune=False)),
    "RelaxELBO": ("RelaxELBO", lambda pc: pc.RelaxELBO()),
    "DisarmELBO": ("DisarmELBO", lambda pc: pc.DisarmELBO()),
    "VimcoELBO": ("VimcoELBO", lambda pc: pc.VimcoELBO(num_particles=VIMCO_K)),
    "RlooELBO": ("RlooELBO", lambda pc: pc.RlooELBO(num_particles=VIMCO_K)),
    "RebarELBO(tune=False), vectorised": (
        "RebarELBO(tune=False)",
        lambda pc: pc.RebarELBO(tune=False, vectorize_particles=True),
    ),
    "DisarmELBO, vectorised": ("DisarmELBO", lambda pc: pc.DisarmELBO(vectorize_particles=True)),
    "VimcoELBO, vectorised": (
        "VimcoELBO",
        lambda pc: pc.VimcoELBO(num_particles=VIMCO_K, vectorize_particles=True),
    ),
    "RlooELBO, vectorised": (
        "RlooELBO",
        lambda pc: pc.RlooELBO(num_particles=VIMCO_K, vectorize_particles=True),
    ),
}


def floor_rows(x: np.ndarray, latents: int, options) -> dict[str, tuple]:
    """``name -> (library ms, floor ms, library / floor)`` per step (each: median, smallest,
    largest over the repeats) in Pyro, with Pyro's and torch's validation on (their
    defaults) for the library: one ``SVI.step`` against the same estimator written directly
    in torch (``floors_torch.py``), each followed by an Adam step over its parameters."""
    import floors_torch
    import pyro
    import torch
    from pyro.infer import SVI

    import pyro_concrete as pc
    from pyro_concrete.problems import SigmoidBeliefNet

    x = torch.tensor(x)
    pixel_logits = torch.logit(x.mean(0).clamp(1e-3, 1 - 1e-3))
    pyro.clear_param_store()  # the net's parameters are the param store's
    sbn = SigmoidBeliefNet(latents=(latents,), hidden=None, pixel_logits=pixel_logits)
    encoder, decoder = sbn.encoder[0][0], sbn.decoder[0][0]
    steps = {}
    for name, (_, make) in FLOORED.items():
        svi = SVI(sbn.model, sbn.guide, pyro.optim.Adam({"lr": 0.0}), make(pc))
        steps[name] = lambda svi=svi: svi.step(x)
    for name, floor in floors_torch.floors(latents, VIMCO_K).items():
        tuned = floor.parameters() if hasattr(floor, "parameters") else []
        params = [*encoder.parameters(), *decoder.parameters(), *tuned]
        optim = torch.optim.Adam(params, lr=0.0)

        def step(floor=floor, params=params, optim=optim):
            for p in params:
                p.grad = None
            floor(encoder, decoder, x)
            optim.step()

        steps[_floor(name)] = step
    with pyro.validation_enabled(True):
        timing = time_interleaved(steps, options)

    def ms(name: str) -> tuple[float, float, float]:
        return tuple(1e3 * t for t in (timing.median(name), *_extremes(timing, name)))

    return {
        name: (
            ms(name),
            ms(_floor(floor)),
            (timing.ratio(name, _floor(floor)), *timing.spread(name, _floor(floor))),
        )
        for name, (floor, _) in FLOORED.items()
    }


def _floor(name: str) -> str:
    return f"{name} floor"


def floor_table(rows: dict[str, tuple]) -> str:
    body = [
        [name, *("{:.2f} ({:.2f}-{:.2f})".format(*cell) for cell in cells)]
        for name, cells in rows.items()
    ]
    headers = ["estimator", "library ms / step", "torch floor ms / step", "library / floor"]
    return markdown_table(headers, body)


#: the tuning objectives compared (``tune_on``), and Adam's steps on the tuned quantities
TUNE_ON = ("parameters", "logits")
TUNING_STEPS = 150


def tuning_rows(x: np.ndarray, latents: int, draws: int, options) -> dict[str, tuple]:
    """``name -> (ms per step, variance)`` in Pyro for the tuned ``RebarELBO`` and
    ``RelaxELBO`` with each ``tune_on``: one ``SVI.step`` (median, smallest, largest over
    interleaved repeats), and the per-draw variance of the encoder's gradient after
    ``TUNING_STEPS`` Adam steps (lr 0.01) on the tuned quantities alone, the net held at
    its initial point."""
    import pyro
    import torch
    from pyro.infer import SVI

    import pyro_concrete as pc
    from pyro_concrete.problems import SigmoidBeliefNet

    x = torch.tensor(x)
    pixel_logits = torch.logit(x.mean(0).clamp(1e-3, 1 - 1e-3))
    steps, variances = {}, {}
    for cls in ("RebarELBO", "RelaxELBO"):
        for on in TUNE_ON:
            name = f"{cls}(tune_on={on!r})"
            # a net's parameters are the param store's only if it is the first of its names
            pyro.clear_param_store()
            torch.manual_seed(0)  # the same net and draws for every objective
            sbn = SigmoidBeliefNet(latents=(latents,), hidden=None, pixel_logits=pixel_logits)
            loss = getattr(pc, cls)(tune_on=on)
            loss.loss_and_grads(sbn.model, sbn.guide, x)  # creates the tuned quantities
            tuned = list(loss.tuned.parameters())
            optim = torch.optim.Adam(tuned, lr=0.01)
            grads = []
            for step in range(-(TUNING_STEPS if not options.fast else 10), draws):
                for p in [*sbn.parameters(), *tuned]:
                    p.grad = None
                loss.loss_and_grads(sbn.model, sbn.guide, x)
                if step < 0:
                    optim.step()
                else:
                    encoder = sbn.encoder.parameters()
                    grads.append(torch.cat([p.grad.reshape(-1) for p in encoder]).numpy())
            variances[name] = float(np.var(grads, 0).sum())
    pyro.clear_param_store()
    sbn = SigmoidBeliefNet(latents=(latents,), hidden=None, pixel_logits=pixel_logits)
    for cls in ("RebarELBO", "RelaxELBO"):
        for on in TUNE_ON:
            loss = getattr(pc, cls)(tune_on=on)
            svi = SVI(sbn.model, sbn.guide, pyro.optim.Adam({"lr": 0.0}), loss)
            steps[f"{cls}(tune_on={on!r})"] = lambda svi=svi: svi.step(x)
    timing = time_interleaved(steps, options)
    return {
        name: (tuple(1e3 * t for t in (timing.median(name), *_extremes(timing, name))), var)
        for name, var in variances.items()
    }


def _extremes(timing, name: str) -> tuple[float, float]:
    return min(timing.seconds[name]), max(timing.seconds[name])


def tuning_table(rows: dict[str, tuple]) -> str:
    body = [
        [name, "{:.2f} ({:.2f}-{:.2f})".format(*ms), f"{variance:.4g}"]
        for name, (ms, variance) in rows.items()
    ]
    return markdown_table(["estimator", "ms / step", "variance after tuning"], body)


def _losses(module, extra: dict) -> dict:
    return {
        "RebarELBO": module.RebarELBO(),
        "RelaxELBO": module.RelaxELBO(),
        "DisarmELBO": module.DisarmELBO(),
        "VimcoELBO": module.VimcoELBO(num_particles=VIMCO_K),
        **extra,
    }


def numpyro_rows(x: np.ndarray, latents: int, draws: int, options) -> dict[str, tuple]:
    """``name -> (time ratio, variance, library / by hand)`` in NumPyro, every step under
    ``jax.jit``."""
    import by_hand
    import jax
    import jax.numpy as jnp
    from numpyro.infer import SVI, Trace_ELBO, TraceGraph_ELBO
    from numpyro.optim import Adam

    import numpyro_concrete as nc
    from numpyro_concrete.problems import SigmoidBeliefNet

    x = jnp.asarray(x)
    pixel_logits = jax.scipy.special.logit(jnp.clip(x.mean(0), 1e-3, 1 - 1e-3))
    sbn = SigmoidBeliefNet(latents=(latents,), hidden=None, pixel_logits=pixel_logits)
    losses = _losses(nc, {"score function": TraceGraph_ELBO()})
    programs = {name: (sbn.model, sbn.guide, loss) for name, loss in losses.items()}
    programs["relaxed"] = (nc.relax(sbn.model, 0.5), nc.relax(sbn.guide, 2 / 3), Trace_ELBO())
    steps, out = {}, {}
    for name, (model, guide, loss) in programs.items():
        guide = loss.tunable(guide) if hasattr(loss, "tunable") else guide
        svi = SVI(model, guide, Adam(0.0), loss)
        state = svi.init(jax.random.PRNGKey(0), x)
        update = jax.jit(svi.update)
        steps[name] = _stepper(update, state, x)
        params = svi.get_params(state)
        names = [k for k in params if k.startswith("encoder")]

        def grad(key, loss=loss, model=model, guide=guide, params=params, names=names):
            g = jax.grad(lambda p: loss.loss(key, p, model, guide, x))(params)
            return jnp.concatenate([g[k].ravel() for k in names])

        keys = jax.random.split(jax.random.PRNGKey(1), draws)
        grads = jax.jit(jax.vmap(grad))(keys)
        out[name] = float(jnp.var(grads, 0).sum())
    hand = by_hand.numpyro_estimators(VIMCO_K)
    others = {UNTUNED["RebarELBO"]: nc.RebarELBO(tune=False)}
    others.update({_by_hand(name): by_hand.ByHand(fn) for name, fn in hand.items()})
    for name, loss in others.items():
        svi = SVI(sbn.model, sbn.guide, Adam(0.0), loss)
        steps[name] = _stepper(jax.jit(svi.update), svi.init(jax.random.PRNGKey(0), x), x)
    timing = time_interleaved(steps, options)
    versus = versus_by_hand(timing, hand)
    return {
        name: (timing.ratio(name, "relaxed"), out[name], versus.get(name), None)
        for name in programs
    }


def _stepper(update, state, x):
    box = [state]

    def step():
        box[0], loss = update(box[0], x)
        loss.block_until_ready()

    return step


def table(rows: dict[str, tuple]) -> str:
    reference = rows["score function"][0] * rows["score function"][1]
    names = [n for n in (*ESTIMATORS, BASELINE, "relaxed") if n in rows]
    body = [
        [
            name,
            rows[name][0],
            f"{rows[name][1]:.3g}",
            f"{rows[name][0] * rows[name][1] / reference:.3g}",
            _versus(*rows[name][2:]),
        ]
        for name in names
    ]
    body[-1][0] = "relaxed Trace_ELBO (biased)"
    headers = [
        "estimator",
        "time / relaxed step",
        "variance",
        "variance x time / score function",
        "library / by hand (range)",
    ]
    return markdown_table(headers, body)


def _versus(versus: tuple | None, vectorized: tuple | None) -> str:
    if versus is None:
        return "n/a"
    text = "{:.2f} ({:.2f}-{:.2f})".format(*versus)
    if vectorized is None:
        return text
    return text + "; vectorised {:.2f} ({:.2f}-{:.2f})".format(*vectorized)


def main() -> None:
    options = parse_options(__doc__.splitlines()[0])
    quiet_library_warnings()
    import pyro

    pyro.enable_validation(False)  # torch's argument checks and Pyro's, for both sides
    latents, batch, draws = (20, 8, 16) if options.fast else (200, 50, 400)
    x = images(batch)
    print("## Estimators of the discrete ELBO's gradient: SBN 200H-784V\n")
    if options.fast:
        print("**--fast: 20 latent units, 8 images, 16 draws: a smoke test.**\n")
    print(f"{latents} latent units, {batch} images per step, {draws} draws per variance.\n")
    print("### PyTorch / Pyro (eager)\n")
    print(table(pyro_rows(x, latents, draws, options)))
    print("\n### PyTorch / Pyro against the plain-torch floor, validation on\n")
    print(floor_table(floor_rows(x, latents, options)))
    print("\n### PyTorch / Pyro: the tuning objective of REBAR and RELAX\n")
    print(tuning_table(tuning_rows(x, latents, draws // 2, options)))
    print("\n### NumPyro (every step under `jax.jit`)\n")
    print(table(numpyro_rows(x, latents, draws, options)))
    print(f"\n{environment(options)}")


if __name__ == "__main__":
    main()
