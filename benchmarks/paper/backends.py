"""Training and evaluation in each backend, through the libraries' public APIs.

Both backends offer the same small interface, so :mod:`.run` states a run once:

- ``problem(arch, pixel_logits)``: the problem of :mod:`<package>.problems`;
- ``trace_elbo()``, ``importance_weighted_elbo(m)``, ``make_loss(cls, m)``: the losses;
- ``trainer(model, guide, loss, lr, seed, train)``: an object with ``run(n)`` (``n`` Adam
  steps on minibatches of 64 drawn uniformly with replacement; returns their ``n`` losses),
  ``state()`` / ``load_state(state)`` (a checkpoint, plain numpy / torch objects) and
  ``bounds(model, guide, images, k, seed)``: ``discrete_bound`` on every image, in chunks of
  ``CHUNK`` images with ``PARTICLES_PER_PASS`` particles per vectorised pass (memory
  bounded by ``CHUNK x PARTICLES_PER_PASS x 784`` numbers), one mean per chunk.

NumPyro is the fast path: ``run(n)`` is one jitted ``lax.scan`` over ``n`` calls of
``svi.update``, step ``t``'s minibatch drawn inside from the data key folded with ``t``, so
the steps do not depend on how they are grouped into scans (``--chunk``) nor on where a run
was interrupted and resumed.  It is data-parallel over the devices of
``numpyro_concrete.distributed.data_mesh``: each minibatch is split over the mesh's axis
(``NamedSharding(mesh, P("data"))``), the SVI state and the training images are replicated,
and XLA sums the gradient over devices, so ``N`` devices take the one-device steps up to the
order of float32 sums; ``bounds`` splits each chunk of images the same way
(``sharded_discrete_bound``).  Pyro runs ``svi.step`` in a loop, on one device, drawing the
minibatches in sequence from one generator that the checkpoint saves: the parity check.
"""

import os
import platform
from collections.abc import Callable

import numpy as np

from .protocol import BATCH, Architecture

__all__ = ["CHUNK", "PARTICLES_PER_PASS", "NumpyroBackend", "PyroBackend", "get_backend"]

CHUNK = 100  # images per discrete_bound call
PARTICLES_PER_PASS = 100  # particles per vectorised pass inside discrete_bound


def _cpu() -> str:
    """The host: architecture and the number of cores."""
    return f"{platform.machine()}, {os.cpu_count()} cores"


def pixel_logits(train: np.ndarray, half: int | None = None) -> np.ndarray:
    """The logit of each pixel's base rate in the training images (of the bottom half
    when ``half`` is given), the rate clipped to [1e-3, 1 - 1e-3]."""
    rate = np.clip(train.mean(0, dtype=np.float64), 1e-3, 1 - 1e-3)
    rate = rate if half is None else rate[half:]
    return np.log(rate / (1 - rate)).astype(np.float32)


class NumpyroBackend:
    name = "numpyro"

    def __init__(self, devices: int = 1) -> None:
        import jax
        import numpyro

        import numpyro_concrete
        from numpyro_concrete.distributed import data_mesh

        self.jax, self.numpyro, self.package = jax, numpyro, numpyro_concrete
        available = jax.devices()
        if not 1 <= devices <= len(available):
            raise ValueError(
                f"--devices must lie in [1, {len(available)}] (the devices JAX sees), got "
                f"{devices}; on a CPU, XLA_FLAGS=--xla_force_host_platform_device_count=N "
                "makes N host devices"
            )
        if BATCH % devices:
            raise ValueError(f"--devices must divide the minibatch of {BATCH}, got {devices}")
        self.mesh = data_mesh(available[:devices])

    def device(self) -> str:
        device, count = self.jax.devices()[0], self.mesh.size
        return f"{device.platform}: {device.device_kind} x{count} ({_cpu()})"

    def versions(self) -> dict:
        return {"jax": self.jax.__version__, "numpyro": self.numpyro.__version__}

    def load(self) -> dict[str, np.ndarray]:
        return {k: np.asarray(v) for k, v in self.package.load_binarized_mnist().items()}

    def problem(self, arch: Architecture, logits: np.ndarray) -> object:
        from numpyro_concrete import problems

        cls = (
            problems.SigmoidBeliefNet
            if arch.table == "density"
            else problems.StructuredPredictionNet
        )
        return cls(latents=arch.latents, hidden=arch.hidden, pixel_logits=logits)

    def trace_elbo(self):
        return self.numpyro.infer.Trace_ELBO()

    def importance_weighted_elbo(self, m: int):
        return self.package.ImportanceWeightedELBO(num_particles=m)

    def make_loss(self, cls: type, m: int):
        return cls(num_particles=m) if m > 1 else cls()

    def trainer(self, model, guide, loss, lr: float, seed: int, train: np.ndarray):
        return _NumpyroTrainer(self, model, guide, loss, lr, seed, train)


class _NumpyroTrainer:
    def __init__(self, backend, model, guide, loss, lr, seed, train) -> None:
        from jax.sharding import NamedSharding, PartitionSpec

        jax, numpyro = backend.jax, backend.numpyro
        self.jax, self.package, self.mesh = jax, backend.package, backend.mesh
        # rows split over the mesh's one axis; everything else whole on every device
        self.rows = NamedSharding(self.mesh, PartitionSpec(*self.mesh.axis_names))
        self.everywhere = NamedSharding(self.mesh, PartitionSpec())
        self.train = jax.device_put(jax.numpy.asarray(train), self.everywhere)
        self.svi = numpyro.infer.SVI(model, guide, numpyro.optim.Adam(lr), loss)
        init_key, self.data_key = jax.random.split(jax.random.PRNGKey(seed))
        self.svi_state = jax.device_put(
            self.svi.init(init_key, self.train[:BATCH]), self.everywhere
        )
        self.steps = 0
        self._scan = jax.jit(self._scan_steps, static_argnums=4, out_shardings=self.everywhere)

    def _scan_steps(self, svi_state, train, data_key, first: int, n: int):
        jax = self.jax

        def step(state, t):
            key = jax.random.fold_in(data_key, t)  # step t's minibatch, however steps group
            batch = train[jax.random.randint(key, (BATCH,), 0, train.shape[0])]
            batch = jax.lax.with_sharding_constraint(batch, self.rows)
            return self.svi.update(state, batch)

        return jax.lax.scan(step, svi_state, first + jax.numpy.arange(n))

    def run(self, n: int) -> np.ndarray:
        self.svi_state, losses = self._scan(
            self.svi_state, self.train, self.data_key, self.steps, n
        )
        self.steps += n
        return np.asarray(losses)

    def state(self) -> dict:
        return {
            "steps": self.steps,
            "leaves": [np.asarray(x) for x in self.jax.tree.leaves(self.svi_state)],
        }

    def load_state(self, state: dict) -> None:
        treedef = self.jax.tree.structure(self.svi_state)
        self.svi_state = self.jax.device_put(
            self.jax.tree.unflatten(treedef, [self.jax.numpy.asarray(x) for x in state["leaves"]]),
            self.everywhere,
        )
        self.steps = state["steps"]

    def bounds(
        self, model: Callable, guide: Callable, images: np.ndarray, k: int, seed: int
    ) -> np.ndarray:
        from numpyro_concrete.distributed import sharded_discrete_bound

        params = self.svi.get_params(self.svi_state)
        key = self.jax.random.PRNGKey(seed)
        out = []
        for i, start in enumerate(range(0, len(images), CHUNK)):
            x = images[start : start + CHUNK]
            options = {"num_samples": k, "batch_size": min(k, PARTICLES_PER_PASS)}
            chunk_key = self.jax.random.fold_in(key, i)
            if len(x) % self.mesh.size:  # a last chunk that does not split evenly: whole
                x = self.jax.numpy.asarray(x)
                bound = self.package.discrete_bound(chunk_key, model, guide, params, x, **options)
            else:
                bound = sharded_discrete_bound(
                    chunk_key, model, guide, params, x, mesh=self.mesh, **options
                )
            out.append(bound / len(x))
        return np.array(out)


class PyroBackend:
    name = "pyro"

    def __init__(self) -> None:
        import pyro
        import torch

        import pyro_concrete

        self.pyro, self.torch, self.package = pyro, torch, pyro_concrete

    def device(self) -> str:
        return f"cpu: torch, {self.torch.get_num_threads()} thread(s) ({_cpu()})"

    def versions(self) -> dict:
        return {"torch": self.torch.__version__, "pyro-ppl": self.pyro.__version__}

    def load(self) -> dict[str, np.ndarray]:
        return {k: v.numpy() for k, v in self.package.load_binarized_mnist().items()}

    def problem(self, arch: Architecture, logits: np.ndarray) -> object:
        from pyro_concrete import problems

        cls = (
            problems.SigmoidBeliefNet
            if arch.table == "density"
            else problems.StructuredPredictionNet
        )
        return cls(
            latents=arch.latents, hidden=arch.hidden, pixel_logits=self.torch.as_tensor(logits)
        )

    def trace_elbo(self):
        return self.pyro.infer.Trace_ELBO(max_plate_nesting=1)

    def importance_weighted_elbo(self, m: int):
        return self.package.ImportanceWeightedELBO(num_particles=m, vectorize_particles=True)

    def make_loss(self, cls: type, m: int):
        """The estimators' documented constructor arguments only (the number of plates
        is guessed once, as Pyro's ELBOs do)."""
        return cls(num_particles=m, vectorize_particles=True) if m > 1 else cls()

    def trainer(self, model, guide, loss, lr: float, seed: int, train: np.ndarray):
        return _PyroTrainer(self, model, guide, loss, lr, seed, train)


class _PyroTrainer:
    def __init__(self, backend, model, guide, loss, lr, seed, train) -> None:
        pyro, torch = backend.pyro, backend.torch
        self.pyro, self.torch, self.package = pyro, torch, backend.package
        self.train = torch.as_tensor(train)
        self.optim = pyro.optim.Adam({"lr": lr})
        self.svi = pyro.infer.SVI(model, guide, self.optim, loss)
        self.generator = torch.Generator().manual_seed(seed)
        self.steps = 0

    def run(self, n: int) -> np.ndarray:
        losses = []
        for _ in range(n):
            index = self.torch.randint(len(self.train), (BATCH,), generator=self.generator)
            losses.append(self.svi.step(self.train[index]))
        self.steps += n
        return np.array(losses)

    def state(self) -> dict:
        return {
            "steps": self.steps,
            "params": self.pyro.get_param_store().get_state(),
            "optim": self.optim.get_state(),
            "generator": self.generator.get_state(),
            "rng": self.pyro.util.get_rng_state(),
        }

    def load_state(self, state: dict) -> None:
        # ``pyro.module`` puts a network's own tensors in the param store and keeps using
        # them (update_module_params=False), so replacing the store's tensors would leave
        # the networks at their initialisation: register every parameter with one
        # evaluation of the loss, then copy the saved values into the registered tensors
        self.svi.evaluate_loss(self.train[:BATCH])
        registered = dict(self.pyro.get_param_store().named_parameters())
        with self.torch.no_grad():
            for name, value in state["params"]["params"].items():
                registered[name].copy_(value)
        self.optim.set_state(state["optim"])
        self.generator.set_state(state["generator"])
        self.pyro.util.set_rng_state(state["rng"])
        self.steps = state["steps"]

    def bounds(
        self, model: Callable, guide: Callable, images: np.ndarray, k: int, seed: int
    ) -> np.ndarray:
        self.torch.manual_seed(seed)
        out = []
        for start in range(0, len(images), CHUNK):
            x = self.torch.as_tensor(images[start : start + CHUNK])
            bound = self.package.discrete_bound(
                model, guide, x, num_samples=k, batch_size=min(k, PARTICLES_PER_PASS)
            )
            out.append(bound / len(x))
        return np.array(out)


def get_backend(name: str, devices: int = 1):
    """``"numpyro"`` (data-parallel over ``devices``) or ``"pyro"`` (one device)."""
    backends = {"numpyro": NumpyroBackend, "pyro": PyroBackend}
    if name not in backends:
        raise ValueError(f"unknown backend {name!r}; choose from {sorted(backends)}")
    if name == "pyro":
        if devices != 1:
            raise ValueError(
                f"--devices {devices}: the Pyro backend trains on one device. Data-parallel "
                "Pyro is pyro_concrete.distributed.LightningSVI, one process per device "
                "(examples/distributed_pyro.py); this runner uses it for no row. Use "
                "--backend numpyro for several devices."
            )
        return PyroBackend()
    return NumpyroBackend(devices)
