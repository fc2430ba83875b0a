"""One adapter per backend, so that ``relax_suite.py`` states the relaxation workflow once.

A model or guide in the suite is written against an adapter ``b``: ``b.sample``,
``b.plate``, ``b.param``, ``b.deterministic``, ``b.tanh``, the distributions
``b.Bernoulli``, ``b.OneHotCategorical``, ``b.Normal``, ``b.LogNormal``, ``b.Poisson``,
``b.Delta``, the handlers ``b.condition``, ``b.substitute``, ``b.block``, the autoguides
``b.AutoGuideList``, ``b.AutoDelta`` with ``b.init_to_value``, and the package under test
``b.pc``; arrays go in through ``b.array`` (float32) and come back through ``b.numpy``
(float64 numpy).  Inference runs through ``b.fit``, ``b.particle_loss``, ``b.probs``,
``b.predictive``, ``b.discrete_bound``, which own the backend's idiom (Pyro's global
parameter store and ``svi.step``; NumPyro's PRNG keys, explicit ``params`` and a jitted
``svi.update``).
Time series are the one thing written differently in the two PPLs: ``b.hmm(form)``
builds the same hidden Markov model in each of the backend's ``HMM_FORMS``.
"""

import abc
import pickle

import numpy as np

__all__ = ["NumpyroRelaxBackend", "PyroRelaxBackend", "RelaxBackend", "backend"]


def backend(name: str) -> "RelaxBackend":
    """The adapter of backend ``name``, one per process (models that pickle hold the
    name, and find their adapter here)."""
    if name not in _ADAPTERS:
        _ADAPTERS[name] = {"pyro": PyroRelaxBackend, "numpyro": NumpyroRelaxBackend}[name]()
    return _ADAPTERS[name]


_ADAPTERS: dict = {}


def _kwargs_at(step_kwargs, step) -> dict:
    return step_kwargs(step) if step_kwargs else {}


class RelaxBackend(abc.ABC):
    """What the relaxation suite needs from a backend."""

    name: str
    #: the forms of ``hmm``: a Python loop, and the backend's own time-series idiom
    HMM_FORMS: tuple[str, ...]

    def array(self, x):
        """A float32 backend array."""
        return self._array(np.asarray(x, dtype=np.float32))

    @abc.abstractmethod
    def _array(self, x: np.ndarray): ...

    @staticmethod
    @abc.abstractmethod
    def numpy(x) -> np.ndarray:
        """A backend array as a float64 numpy array."""

    @abc.abstractmethod
    def index(self, x):
        """An integer backend array."""

    @abc.abstractmethod
    def mask(self, x):
        """A boolean backend array."""

    def trace(self, fn, *args, seed=0, **kwargs) -> dict:
        """``{name: site}`` of one run of ``fn`` (sites as the backend's trace holds them)."""
        return self.run(fn, *args, seed=seed, **kwargs)[1]

    @abc.abstractmethod
    def run(self, fn, *args, seed=0, **kwargs) -> tuple:
        """``(what fn returns, {name: site})`` of one run of ``fn``."""

    @abc.abstractmethod
    def log_joint(self, fn, *args, seed=0) -> tuple:
        """``(log p of one run of fn, a float; {name: site})``."""

    @abc.abstractmethod
    def grad(self, fn, *args) -> list:
        """The gradients of the scalar ``fn(*args)`` with respect to each of ``args`` (numpy
        arrays, given to ``fn`` as float32 backend arrays), as numpy."""

    @staticmethod
    def param_values(trace: dict) -> dict:
        """``{name: value}`` of the parameter sites of a trace."""
        return {name: site["value"] for name, site in trace.items() if site["type"] == "param"}

    def latent_sites(self, trace: dict) -> dict:
        """The latent sample sites of a trace (no plates, no observed sites)."""
        return {
            name: site
            for name, site in trace.items()
            if site["type"] == "sample" and not site["is_observed"] and not self._is_plate(site)
        }

    @staticmethod
    def _is_plate(site) -> bool:
        return False

    @abc.abstractmethod
    def fit(self, model, guide, *args, steps, lr=0.05, lr_decay=None, seed=0, step_kwargs=None):
        """Train with ``Trace_ELBO`` for ``steps`` steps, passing ``step_kwargs(step)`` as
        extra keywords to each step; Adam, or with ``lr_decay`` Pyro's ``ClippedAdam``
        (gradients clipped to 10, the step size times ``lr_decay`` every step).
        ``(params, losses)``."""

    @abc.abstractmethod
    def particle_loss(
        self, model, guide, params, *args, num_particles, max_plate_nesting, seed=0
    ) -> float:
        """``Trace_ELBO(num_particles=..., vectorize_particles=True)``'s loss, as the
        backend runs it in training (NumPyro: ``vmap`` under ``jit``; Pyro is told
        ``max_plate_nesting``, else it runs the model once more to guess it)."""

    @abc.abstractmethod
    def record(self, received: list, value) -> None:
        """From inside a model: append ``value`` (numpy) to ``received``, also from under
        ``jit`` and ``vmap``."""

    @abc.abstractmethod
    def init_params(self, guide, *args, seed=7) -> dict:
        """The parameters of ``guide`` at initialisation (as ``svi.init`` makes them)."""

    @abc.abstractmethod
    def log_alpha(self, params) -> dict:
        """The relaxed autoguide's ``log_alpha`` of each site, as numpy."""

    @abc.abstractmethod
    def replay(self, fn, trace):
        """``replay(fn, trace)`` of a trace as ``trace`` returns it."""

    @abc.abstractmethod
    def median(self, guide, params, *args) -> dict:
        """``guide.median`` as numpy."""

    @abc.abstractmethod
    def probs(self, guide, params, *args) -> dict:
        """``guide.probs`` as numpy."""

    @abc.abstractmethod
    def quantiles(self, guide, params, quantiles, *args) -> dict:
        """``guide.quantiles`` with the backend's signature."""

    @abc.abstractmethod
    def load_params(self, params: dict) -> None:
        """Make ``params`` the current parameters (Pyro: the parameter store)."""

    @abc.abstractmethod
    def predictive(self, model, guide, params, num_samples, *args, return_sites, seed=0):
        """``Predictive(model, guide=guide, num_samples=..., return_sites=...)(*args)``,
        as numpy."""

    @abc.abstractmethod
    def discrete_bound(
        self, model, guide, params, *args, num_samples, batch_size=None, seed=0
    ) -> float:
        """``discrete_bound(...)`` with the backend's signature."""

    @staticmethod
    def pickle_round_trip(obj):
        return pickle.loads(pickle.dumps(obj))

    @abc.abstractmethod
    def hmm(self, form: str, locs, trans, init):
        """A two-state hidden Markov model ``model(ys)`` of ``len(ys)`` steps: ``z_0 ~
        Cat(init)``, ``z_t ~ Cat(trans[z_{t-1}])``, ``y_t ~ N(locs[z_t], 1)``, written in
        ``form``; the hidden states are one-hot ``OneHotCategorical`` sites."""

    @abc.abstractmethod
    def hidden_states(self, values: dict, length: int) -> np.ndarray:
        """The ``(length, 2)`` per-step values of ``hmm``'s hidden states in ``values``
        (a dict of probabilities or samples by site name)."""


# --- Pyro --------------------------------------------------------------------------


class PyroRelaxBackend(RelaxBackend):
    name = "pyro"
    HMM_FORMS = ("markov", "markov_in_plate")

    def __init__(self):
        import pyro
        import pyro.distributions as dist
        import torch
        from pyro.infer import autoguide

        import pyro_concrete

        self.pyro, self.torch, self.pc = pyro, torch, pyro_concrete
        self.sample, self.plate, self.param = pyro.sample, pyro.plate, pyro.param
        self.deterministic = pyro.deterministic
        self.Bernoulli, self.OneHotCategorical = dist.Bernoulli, dist.OneHotCategorical
        self.Normal, self.Poisson, self.Categorical = dist.Normal, dist.Poisson, dist.Categorical
        self.DISCRETE_BINARY = "Bernoulli"  # the class of a discretized binary site
        self.LogNormal, self.Delta, self.tanh = dist.LogNormal, dist.Delta, torch.tanh
        self.condition, self.substitute = pyro.poutine.condition, pyro.poutine.substitute
        self.block, self.init_to_value = pyro.poutine.block, autoguide.init_to_value
        self.AutoGuideList, self.AutoDelta = autoguide.AutoGuideList, autoguide.AutoDelta

    def _array(self, x):
        return self.torch.as_tensor(x)

    @staticmethod
    def _is_plate(site):
        from pyro.poutine.util import site_is_subsample

        return site_is_subsample(site)

    @staticmethod
    def numpy(x):
        return np.asarray(x.detach().cpu().numpy() if hasattr(x, "detach") else x, np.float64)

    def index(self, x):
        return self.torch.as_tensor(np.asarray(x))

    def mask(self, x):
        return self.torch.as_tensor(np.asarray(x, bool))

    def run(self, fn, *args, seed=0, **kwargs):
        self.pyro.set_rng_seed(seed)
        tracer = self.pyro.poutine.trace(fn)
        return tracer(*args, **kwargs), dict(tracer.trace.nodes)

    def log_joint(self, fn, *args, seed=0):
        self.pyro.set_rng_seed(seed)
        trace = self.pyro.poutine.trace(fn).get_trace(*args)
        return float(trace.log_prob_sum()), dict(trace.nodes)

    def grad(self, fn, *args):
        args = [self.array(x).requires_grad_() for x in args]
        fn(*args).backward()
        return [self.numpy(x.grad) for x in args]

    def fit(self, model, guide, *args, steps, lr=0.05, lr_decay=None, seed=0, step_kwargs=None):
        from pyro.infer import SVI, Trace_ELBO
        from pyro.optim import Adam, ClippedAdam

        self.pyro.set_rng_seed(seed)
        optim = Adam({"lr": lr}) if lr_decay is None else ClippedAdam({"lr": lr, "lrd": lr_decay})
        svi = SVI(model, guide, optim, Trace_ELBO())
        losses = [svi.step(*args, **_kwargs_at(step_kwargs, step)) for step in range(steps)]
        params = {k: v.detach().clone() for k, v in self.pyro.get_param_store().items()}
        return params, np.array(losses)

    def particle_loss(self, model, guide, params, *args, num_particles, max_plate_nesting, seed=0):
        from pyro.infer import Trace_ELBO

        self.pyro.set_rng_seed(seed)
        elbo = Trace_ELBO(
            num_particles=num_particles,
            vectorize_particles=True,
            max_plate_nesting=max_plate_nesting,
        )
        return float(elbo.loss(model, guide, *args))

    def record(self, received, value):
        received.append(self.numpy(value))

    def init_params(self, guide, *args, seed=7):
        self.pyro.set_rng_seed(seed)
        guide(*args)
        return {k: v.detach().clone() for k, v in self.pyro.get_param_store().items()}

    def log_alpha(self, params):
        return {
            k.rsplit(".", 1)[-1]: self.numpy(v) for k, v in params.items() if ".log_alpha." in k
        }

    def replay(self, fn, trace):
        replayed = self.pyro.poutine.Trace()
        replayed.nodes.update(trace)
        return self.pyro.poutine.replay(fn, trace=replayed)

    def probs(self, guide, params, *args):
        return {k: self.numpy(v) for k, v in guide.probs(*args).items()}

    def median(self, guide, params, *args):
        return {k: self.numpy(v) for k, v in guide.median(*args).items()}

    def quantiles(self, guide, params, quantiles, *args):
        return guide.quantiles(quantiles, *args)

    def load_params(self, params):
        self.pyro.clear_param_store()
        for name, value in params.items():
            self.pyro.param(name, value)

    def predictive(self, model, guide, params, num_samples, *args, return_sites, seed=0):
        from pyro.infer import Predictive

        self.pyro.set_rng_seed(seed)
        predictive = Predictive(
            model, guide=guide, num_samples=num_samples, return_sites=return_sites
        )
        samples = predictive(*args)
        return {k: self.numpy(v) for k, v in samples.items()}

    def discrete_bound(self, model, guide, params, *args, num_samples, batch_size=None, seed=0):
        self.pyro.set_rng_seed(seed)
        return self.pc.discrete_bound(
            model, guide, *args, num_samples=num_samples, batch_size=batch_size
        )

    def hmm(self, form, locs, trans, init):
        pyro, dist = self.pyro, self.pyro.distributions
        locs, trans, init = self.array(locs), self.array(trans), self.array(init)

        def chain(ys):
            z = init
            for t in pyro.markov(range(len(ys))):
                z = pyro.sample(f"z_{t}", dist.OneHotCategorical(z @ trans if t else init))
                pyro.sample(f"y_{t}", dist.Normal(self.pc.select(locs, z), 1.0), obs=ys[t])

        if form == "markov":
            return chain

        def model(ys):  # the batch-vectorised form: sequences in a plate, here one
            with pyro.plate("sequences", 1, dim=-1):
                chain(ys.unsqueeze(-1))

        return model

    def hidden_states(self, values, length):
        return np.stack([np.reshape(values[f"z_{t}"], (-1, 2))[-1] for t in range(length)])


# --- NumPyro -------------------------------------------------------------------------


class NumpyroRelaxBackend(RelaxBackend):
    name = "numpyro"
    HMM_FORMS = ("loop", "scan")

    def __init__(self):
        import jax
        import jax.numpy as jnp
        import numpyro
        import numpyro.distributions as dist
        from numpyro import handlers
        from numpyro.infer.autoguide import AutoDelta, AutoGuideList
        from numpyro.infer.initialization import init_to_value

        import numpyro_concrete

        self.jax, self.jnp, self.numpyro, self.pc = jax, jnp, numpyro, numpyro_concrete
        self.sample, self.plate, self.param = numpyro.sample, numpyro.plate, numpyro.param
        self.deterministic = numpyro.deterministic
        self.Bernoulli, self.OneHotCategorical = dist.Bernoulli, numpyro_concrete.OneHotCategorical
        self.Normal, self.Poisson, self.Categorical = dist.Normal, dist.Poisson, dist.Categorical
        self.DISCRETE_BINARY = "BernoulliLogits"  # the class of a discretized binary site
        self.LogNormal, self.Delta, self.tanh = dist.LogNormal, dist.Delta, jnp.tanh
        self.condition, self.substitute = handlers.condition, handlers.substitute
        self.block, self.init_to_value = handlers.block, init_to_value
        self.AutoGuideList, self.AutoDelta = AutoGuideList, AutoDelta

    def _array(self, x):
        return self.jnp.asarray(x)

    @staticmethod
    def numpy(x):
        return np.asarray(x, np.float64)

    def index(self, x):
        return self.jnp.asarray(np.asarray(x))

    def mask(self, x):
        return self.jnp.asarray(np.asarray(x, bool))

    def run(self, fn, *args, seed=0, **kwargs):
        from numpyro import handlers

        tracer = handlers.trace(handlers.seed(fn, rng_seed=seed))
        return tracer(*args, **kwargs), dict(tracer.trace)

    def log_joint(self, fn, *args, seed=0):
        from numpyro import handlers
        from numpyro.infer.util import log_density

        log_p, trace = log_density(handlers.seed(fn, rng_seed=seed), args, {}, {})
        return float(log_p), dict(trace)

    def grad(self, fn, *args):
        grads = self.jax.grad(fn, argnums=tuple(range(len(args))))(*map(self.array, args))
        return [self.numpy(g) for g in grads]

    def fit(self, model, guide, *args, steps, lr=0.05, lr_decay=None, seed=0, step_kwargs=None):
        from jax.example_libraries.optimizers import exponential_decay
        from numpyro.infer import SVI, Trace_ELBO
        from numpyro.optim import Adam, ClippedAdam

        if lr_decay is None:
            optim = Adam(lr)
        else:
            optim = ClippedAdam(exponential_decay(lr, 1, lr_decay), clip_norm=10.0)
        svi = SVI(model, guide, optim, Trace_ELBO())
        if step_kwargs is None:
            result = svi.run(self.jax.random.PRNGKey(seed), steps, *args, progress_bar=False)
            return result.params, np.asarray(result.losses, np.float64)
        state = svi.init(self.jax.random.PRNGKey(seed), *args, **_kwargs_at(step_kwargs, 0))
        update, losses = self.jax.jit(svi.update), []
        for step in range(steps):
            state, loss = update(state, *args, **_kwargs_at(step_kwargs, step))
            losses.append(float(loss))
        return svi.get_params(state), np.array(losses)

    def particle_loss(self, model, guide, params, *args, num_particles, max_plate_nesting, seed=0):
        from numpyro.infer import Trace_ELBO

        elbo = Trace_ELBO(num_particles=num_particles, vectorize_particles=True)
        loss = self.jax.jit(lambda key, params: elbo.loss(key, params, model, guide, *args))
        value = float(loss(self.jax.random.PRNGKey(seed), params))
        self.jax.effects_barrier()
        return value

    def record(self, received, value):
        self.jax.debug.callback(lambda v: received.append(self.numpy(v)), value)

    def init_params(self, guide, *args, seed=7):
        return self.param_values(self.trace(guide, *args, seed=seed))

    def log_alpha(self, params):
        suffix = "_auto_log_alpha"
        return {k[: -len(suffix)]: self.numpy(v) for k, v in params.items() if k.endswith(suffix)}

    def replay(self, fn, trace):
        from numpyro import handlers

        return handlers.replay(fn, trace=trace)

    def probs(self, guide, params, *args):
        return {k: self.numpy(v) for k, v in guide.probs(params, *args).items()}

    def median(self, guide, params, *args):
        return {k: self.numpy(v) for k, v in guide.median(params).items()}

    def quantiles(self, guide, params, quantiles, *args):
        return guide.quantiles(params, quantiles)

    def load_params(self, params):
        pass  # NumPyro's parameters are passed explicitly

    def predictive(self, model, guide, params, num_samples, *args, return_sites, seed=0):
        from numpyro.infer import Predictive

        predictive = Predictive(
            model, guide=guide, params=params, num_samples=num_samples, return_sites=return_sites
        )
        samples = predictive(self.jax.random.PRNGKey(seed), *args)
        return {k: self.numpy(v) for k, v in samples.items()}

    def discrete_bound(self, model, guide, params, *args, num_samples, batch_size=None, seed=0):
        key = self.jax.random.PRNGKey(seed)
        return self.pc.discrete_bound(
            key, model, guide, params, *args, num_samples=num_samples, batch_size=batch_size
        )

    def hmm(self, form, locs, trans, init):
        from numpyro.contrib.control_flow import scan

        numpyro, dist, select = self.numpyro, self.numpyro.distributions, self.pc.select
        locs, trans, init = self.array(locs), self.array(trans), self.array(init)

        def step(probs, y, name="z"):
            z = numpyro.sample(name, self.pc.OneHotCategorical(probs=probs))
            numpyro.sample(f"y{name[1:]}", dist.Normal(select(locs, z), 1.0), obs=y)
            return z @ trans

        if form == "scan":
            return lambda ys: scan(lambda p, y: (step(p, y), None), init, ys)

        def loop(ys):
            probs = init
            for t in range(len(ys)):
                probs = step(probs, ys[t], f"z_{t}")

        return loop

    def hidden_states(self, values, length):
        if "z" in values:
            return np.reshape(values["z"], (-1, length, 2))[-1]
        return np.stack([np.reshape(values[f"z_{t}"], (-1, 2))[-1] for t in range(length)])
