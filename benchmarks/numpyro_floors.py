"""NumPyro's estimators of the discrete ELBO's gradient against their bare JAX floors, per
jitted step, on the sigmoid belief net 200H-784V.

    python benchmarks/numpyro_floors.py [--fast] [--threads N] [--repeats R]

Each estimator's step is a jitted ``svi.update`` of the library's loss (``RebarELBO(
tune=False)``, ``RelaxELBO()``, ``DisarmELBO()``, ``VimcoELBO`` and ``RlooELBO`` with
``K = 5``) on ``SigmoidBeliefNet(latents=(200,), hidden=None)`` of ``problems.py``, with
``numpyro.optim.SGD``; its floor is the same step written directly in JAX
(``floors_jax.py``), from the same parameters on the same batch of 50 training images
(``estimators.images``).  The table gives the median over interleaved repeats of the
per-repeat ratio library / floor, its range, and each side's median time (``common.py``;
one intra-op thread by default).  ``--fast``: 20 latent units, 8 images, 3 repeats: a
smoke test, not a measurement.
"""

import sys
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import (
    environment,
    markdown_table,
    parse_options,
    quiet_library_warnings,
    time_interleaved,
)

#: the target: the library's step within this factor of the floor's
TARGET = 1.2


def library_losses(nc, k: int) -> dict:
    """The library's losses by the names of ``floors_jax.SURROGATES``."""
    return {
        "RebarELBO(tune=False)": nc.RebarELBO(tune=False),
        "RelaxELBO": nc.RelaxELBO(),
        "DisarmELBO": nc.DisarmELBO(),
        f"VimcoELBO(K={k})": nc.VimcoELBO(num_particles=k),
        f"RlooELBO(K={k})": nc.RlooELBO(num_particles=k),
    }


def candidates(x, latents: int) -> dict[str, Callable[[], object]]:
    """``{name: step, name + " floor": step}``: each library estimator's jitted
    ``svi.update`` and its floor, from the same initial parameters, each keeping its state."""
    import floors_jax
    import jax
    import jax.numpy as jnp
    from numpyro.infer import SVI
    from numpyro.optim import SGD

    import numpyro_concrete as nc
    from numpyro_concrete.problems import SigmoidBeliefNet

    x = jnp.asarray(x)
    pixel_logits = jax.scipy.special.logit(jnp.clip(x.mean(0), 1e-3, 1 - 1e-3))
    sbn = SigmoidBeliefNet(latents=(latents,), hidden=None, pixel_logits=pixel_logits)
    out = {}
    for name, loss in library_losses(nc, floors_jax.K).items():
        svi = SVI(sbn.model, loss.tunable(sbn.guide), SGD(floors_jax.LR), loss)
        state = svi.init(jax.random.PRNGKey(0), x)
        update, box = jax.jit(svi.update), [state]

        def library(box=box, update=update):
            box[0], loss_value = update(box[0], x)
            loss_value.block_until_ready()

        # the floor starts from the library's unconstrained parameters (a log temperature)
        start = [svi.optim.get_params(state.optim_state), jax.random.PRNGKey(0)]
        step = floors_jax.floor_step(name)

        def floor(box=start, step=step):
            box[0], box[1], loss_value = step(box[0], box[1], x)
            loss_value.block_until_ready()

        out[name], out[f"{name} floor"] = library, floor
    return out


def main() -> None:
    options = parse_options(__doc__.splitlines()[0])
    quiet_library_warnings()
    import floors_jax
    from estimators import images

    latents, batch = (20, 8) if options.fast else (200, 50)
    timing = time_interleaved(candidates(images(batch), latents), options)
    rows = []
    for name in floors_jax.SURROGATES:
        floor = f"{name} floor"
        ratio, (low, high) = timing.ratio(name, floor), timing.spread(name, floor)
        rows.append(
            [
                name,
                ratio,
                f"{low:.2f}-{high:.2f}",
                f"{timing.median(name) * 1e3:.2f}",
                f"{timing.median(floor) * 1e3:.2f}",
                "yes" if ratio <= TARGET else "**no**",
            ]
        )
    print(f"## NumPyro's estimators against the bare JAX floor: SBN {latents}H-784V\n")
    if options.fast:
        print("**--fast: 20 latent units, 8 images: a smoke test.**\n")
    print(
        f"{latents} latent units, {batch} images per step, K = {floors_jax.K}, temperature "
        f"{floors_jax.TEMPERATURE}, eta {floors_jax.ETA}; jitted `svi.update` (SGD) against "
        "the jitted floor step.\n"
    )
    headers = [
        "estimator",
        "library / floor",
        "per-repeat range",
        "library ms",
        "floor ms",
        f"<= {TARGET}x floor",
    ]
    print(markdown_table(headers, rows))
    print(f"\n{environment(options)}")


if __name__ == "__main__":
    main()
