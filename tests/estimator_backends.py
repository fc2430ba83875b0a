"""One adapter per backend for ``estimators_suite.py``: the problems of
``estimator_references.py`` written as models, gradient draws of an estimator, the
conditional samples, training the sigmoid belief net.  Numpy in, numpy out, float32."""

import abc
from functools import partial

import numpy as np

from tests.estimator_references import MASK, RELAXED_PARAMS, RELAXED_TEMPERATURES, RELAXED_Y
from tests.xla_options import FAST_COMPILE

__all__ = ["EstimatorBackend", "NumpyroEstimators", "PyroEstimators"]


class EstimatorBackend(abc.ABC):
    name: str
    module: object

    def loss(self, name: str, **options):
        """``module.<name>(**options)``."""
        return getattr(self.module, name)(**options)

    @abc.abstractmethod
    def runs_the_default(self, options: dict) -> bool:
        """Whether ``options`` that set ``vectorize_particles`` give the same program as
        the options without it."""

    @abc.abstractmethod
    def gradient_draws(
        self,
        problem: str,
        params: dict,
        y: np.ndarray,
        loss,
        draws: int,
        seed: int,
        tune_steps: int = 0,
        subsample_size: int | None = None,
        scale: float | np.ndarray | None = None,
        mask: np.ndarray | None = None,
    ) -> dict[str, np.ndarray]:
        """``draws`` independent estimates of the objective's gradient (ascent direction)
        with respect to every parameter of ``params``, ``(draws, *shape)`` each; first
        ``tune_steps`` Adam steps on the loss's own tuned quantities only, and then how
        far each moved (unconstrained, the final value less the initial one) under
        ``"tuned/" + name``.  With
        ``subsample_size``, the data plate draws that many of the points at each step;
        with ``scale`` (a number, or one per point) and ``mask`` (one bool per point), the
        backend's scale and mask handlers around both the model and the guide."""

    @abc.abstractmethod
    def objective_values(
        self, problem: str, params: dict, y: np.ndarray, loss, draws: int, scale=None
    ) -> np.ndarray:
        """``draws`` independent values of the loss, negated (the objective's estimates),
        ``scale`` as in :meth:`gradient_draws`."""

    @abc.abstractmethod
    def relaxed_draws(
        self, loss, draws: int, seed: int, scale: float | np.ndarray | None = None
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """``(values, gradients)``: ``draws`` values of ``loss``, negated, and gradients
        (ascent direction) on the relaxed problem of ``estimator_references`` at
        ``RELAXED_PARAMS`` and ``RELAXED_Y``, ``scale`` as in :meth:`gradient_draws`."""

    @abc.abstractmethod
    def conditional_agreement(self, kind: str, logits: np.ndarray, seed: int) -> float:
        """The fraction of conditional samples ``z~`` (float32) that round to the discrete
        sample they were drawn given."""

    @abc.abstractmethod
    def conditional_mixture(
        self, kind: str, logits: np.ndarray, draws: int, seed: int
    ) -> np.ndarray:
        """``z~`` (first coordinate for a categorical) of ``b ~ q(logits)``, ``z~ ~ p(z | b)``."""

    @abc.abstractmethod
    def straight_through_gradients(
        self,
        cls_name: str,
        logits: np.ndarray,
        rao_samples: int,
        draws: int,
        seed: int,
        temperature: float = 0.5,
        reinmax: bool = False,
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(values, gradients)``: ``draws`` forward values of ``cls_name(temperature,
        logits, rao_samples=..., reinmax=...)`` and the gradients w.r.t. ``logits`` of
        ``f(x) = sum_k k (x_k - t_k)^2`` at them (``t = (0.2, 0.9, 0.1)``, the first
        ``len(logits)`` of them for a vector of binary variables)."""

    @abc.abstractmethod
    def run(
        self, problem: str, loss, guide_kind: str = "discrete", subsample_size: int | None = None
    ) -> None:
        """One gradient step of ``loss`` on ``problem`` (for the errors); ``guide_kind``
        ``"relaxed"`` gives a continuous guide, ``"indexing"`` a model that indexes,
        ``"global"`` a Bernoulli site ``g`` outside the data plate in model and guide,
        ``"hierarchical"`` (Bernoulli problem) a site ``u`` in model and guide whose guide
        value shifts the logits of ``z``; ``"where"`` and ``"round"`` (Bernoulli problem) a
        model that reads ``z`` through ``where(z > 0.5, 1, 0)`` or ``round``, ``"argmax"``
        (categorical problem) one that indexes ``mu`` by ``c1.argmax(-1)``: the same values
        at discrete points; ``"missing"`` (Bernoulli problem) a guide without ``z``,
        ``"extra"`` one with a site ``e`` the model lacks, ``"enumerated"`` one whose ``z`` is
        configured for enumeration, ``"family"`` (categorical problem) a ``Categorical``
        guide for the model's one-hot ``c2``; ``"model_scaled"`` the model (only) under a
        scale of 3.  NumPyro's step runs under ``jax.jit``."""

    @abc.abstractmethod
    def guide_runs(
        self,
        problem: str,
        loss,
        y: np.ndarray | None = None,
        subsample_size: int | None = None,
        guide_kind: str = "discrete",
    ) -> list[list[int]]:
        """The data points (the data plate's indices) of each run of the guide in one
        gradient estimate of ``loss`` on ``problem``, on the problem's data or ``y``
        (``guide_kind`` as in :meth:`run`)."""

    @abc.abstractmethod
    def train_sbn(
        self,
        loss,
        train: np.ndarray,
        test: np.ndarray,
        steps: int,
        seed: int,
        relaxed: bool = False,
    ) -> tuple[float, float]:
        """Held-out bound per image (``discrete_bound``, K = 20, on ``test``) of a small
        sigmoid belief net before and after ``steps`` Adam steps with ``loss`` on ``train``
        (on the relaxed model and guide, at temperatures 1/2 and 2/3, when ``relaxed``)."""


# ----------------------------------------------------------------------------- Pyro


class PyroEstimators(EstimatorBackend):
    name = "pyro"

    def runs_the_default(self, options):
        return options.get("vectorize_particles") is False  # the losses' default

    def __init__(self) -> None:
        import pyro
        import torch

        import pyro_concrete

        self.pyro, self.torch, self.module = pyro, torch, pyro_concrete

    def _problem(
        self, problem: str, params: dict, guide_kind: str = "discrete", subsample_size=None
    ) -> tuple:
        pyro, torch = self.pyro, self.torch
        dist = pyro.distributions
        select = self.module.select

        def p(name):
            return pyro.param(name, lambda: torch.tensor(params[name], dtype=torch.float32))

        mask = torch.tensor(MASK if problem == "masked" else 0.0, dtype=torch.float32)

        def model(y):
            if guide_kind == "global":
                pyro.sample("g", dist.Bernoulli(logits=torch.tensor(0.0)))
            if problem == "continuous":
                w = pyro.sample("w", dist.Normal(0.0, 1.0))
            with pyro.plate("data", y.shape[0], subsample_size=subsample_size) as idx:
                y = y[idx]
                if problem == "continuous":
                    z = pyro.sample("z", dist.Bernoulli(logits=p("prior")).to_event(1))
                    mean = z + w
                elif problem == "bernoulli":
                    if guide_kind == "hierarchical":
                        pyro.sample("u", dist.Bernoulli(logits=torch.tensor(0.0)))
                    z = pyro.sample("z", dist.Bernoulli(logits=p("prior")).to_event(1))
                    if guide_kind == "where":
                        z = torch.where(z > 0.5, 1.0, 0.0)
                    elif guide_kind == "round":
                        z = z.round()
                    mean = z @ p("W")
                elif problem in ("categorical", "masked"):
                    c1 = pyro.sample("c1", dist.OneHotCategorical(logits=p("prior1") + mask))
                    c2 = pyro.sample("c2", dist.OneHotCategorical(logits=p("prior2")))
                    if guide_kind == "argmax":
                        mean = p("mu").T[c1.argmax(-1)] + select(p("nu"), c2.unsqueeze(-2))
                    else:
                        mean = select(p("mu"), c1.unsqueeze(-2)) + select(p("nu"), c2.unsqueeze(-2))
                else:
                    b = pyro.sample("b", dist.Bernoulli(logits=p("prior_b")).to_event(1))
                    c = pyro.sample("c", dist.Categorical(logits=p("prior_c")))
                    if guide_kind == "indexing":
                        mean = b @ p("W") + p("mu").T[c]
                    else:
                        mean = b @ p("W") + select(p("mu"), _unsqueeze(c))
                pyro.sample("y", dist.Normal(mean, 1.0).to_event(1), obs=y)

        def guide(y):
            if guide_kind == "global":
                pyro.sample("g", dist.Bernoulli(logits=torch.tensor(0.0)))
            if problem == "continuous":
                w = pyro.sample("w", dist.Normal(p("m"), 0.5))
            with pyro.plate("data", y.shape[0], subsample_size=subsample_size) as idx:
                y = y[idx]
                if problem == "continuous":
                    logits = (p("a") + p("c") * w).expand([y.shape[0], 2])
                    pyro.sample("z", dist.Bernoulli(logits=logits).to_event(1))
                elif problem == "bernoulli":
                    a = p("a")
                    if guide_kind == "hierarchical":
                        a = a + pyro.sample("u", dist.Bernoulli(logits=torch.tensor(0.0)))[:, None]
                    if guide_kind == "relaxed":
                        fn = self.module.BinaryConcrete(0.5, logits=a)
                    else:
                        fn = dist.Bernoulli(logits=a)
                    infer = {"enumerate": "parallel"} if guide_kind == "enumerated" else {}
                    if guide_kind != "missing":
                        pyro.sample("z", fn.expand([y.shape[0], 3]).to_event(1), infer=infer)
                    if guide_kind == "extra":
                        pyro.sample("e", dist.Bernoulli(logits=p("a")).to_event(1))
                elif problem in ("categorical", "masked"):
                    pyro.sample("c1", dist.OneHotCategorical(logits=p("a1") + mask))
                    if guide_kind == "family":
                        pyro.sample("c2", dist.Categorical(logits=p("a2")))
                    else:
                        pyro.sample("c2", dist.OneHotCategorical(logits=p("a2")))
                else:
                    b = pyro.sample("b", dist.Bernoulli(logits=p("a")).to_event(1))
                    pyro.sample("c", dist.Categorical(logits=p("g") + b @ p("V")))

        def _unsqueeze(c):
            return c.unsqueeze(-2) if torch.is_floating_point(c) else c.unsqueeze(-1)

        if guide_kind == "model_scaled":
            return pyro.poutine.scale(model, scale=3.0), guide
        return model, guide

    def _handled(self, model, guide, scale=None, mask=None) -> tuple:
        """``model`` and ``guide`` under ``poutine.scale`` and ``poutine.mask``."""
        poutine, torch = self.pyro.poutine, self.torch
        if scale is not None:
            scale = torch.as_tensor(scale, dtype=torch.float32)
            model, guide = (poutine.scale(f, scale=scale) for f in (model, guide))
        if mask is not None:
            mask = torch.as_tensor(mask)
            model, guide = (poutine.mask(f, mask=mask) for f in (model, guide))
        return model, guide

    def _y(self, y):
        return self.torch.tensor(y, dtype=self.torch.float32)

    def gradient_draws(
        self,
        problem,
        params,
        y,
        loss,
        draws,
        seed,
        tune_steps=0,
        subsample_size=None,
        scale=None,
        mask=None,
    ):
        pyro = self.pyro
        pyro.clear_param_store()
        pyro.set_rng_seed(seed)
        model, guide = self._problem(problem, params, subsample_size=subsample_size)
        model, guide = self._handled(model, guide, scale, mask)
        y = self._y(y)
        moved = self._tune(model, guide, y, loss, tune_steps) if tune_steps else {}
        out = {k: [] for k in params}
        store = pyro.get_param_store()
        for _ in range(draws):
            loss.loss_and_grads(model, guide, y)
            for name in list(store.keys()):
                leaf = store.get_param(name).unconstrained()
                if name in out:
                    out[name].append(-leaf.grad.numpy().copy())
                leaf.grad = None
        return {**{k: np.stack(v) for k, v in out.items()}, **moved}

    def _tune(self, model, guide, y, loss, steps) -> dict[str, np.ndarray]:
        torch, store = self.torch, self.pyro.get_param_store()
        loss.loss_and_grads(model, guide, y)
        tuned = {k: store.get_param(k).unconstrained() for k in store.keys() if _tuned_name(k)}
        before = {k: v.detach().numpy().copy() for k, v in tuned.items()}
        optim = torch.optim.Adam(list(tuned.values()), lr=0.05)
        for _ in range(steps):
            for k in store.keys():
                store.get_param(k).unconstrained().grad = None
            loss.loss_and_grads(model, guide, y)
            optim.step()
        return {f"tuned/{k}": v.detach().numpy() - before[k] for k, v in tuned.items()}

    def objective_values(self, problem, params, y, loss, draws, scale=None):
        self.pyro.clear_param_store()
        self.pyro.set_rng_seed(0)
        model, guide = self._handled(*self._problem(problem, params), scale)
        return np.array([-loss.loss(model, guide, self._y(y)) for _ in range(draws)])

    def _relaxed(self) -> tuple:
        pyro, torch = self.pyro, self.torch
        lam_p, lam_q = RELAXED_TEMPERATURES
        concrete = self.module.LogitBinaryConcrete

        def p(name):
            return pyro.param(name, lambda: torch.tensor(RELAXED_PARAMS[name]))

        def model(y):
            with pyro.plate("data", len(y)):
                z = pyro.sample("z", concrete(lam_p, logits=p("prior").expand(y.shape)))
                pyro.sample("y", pyro.distributions.Normal(p("w") * z.sigmoid(), 1.0), obs=y)

        def guide(y):
            with pyro.plate("data", len(y)):
                pyro.sample("z", concrete(lam_q, logits=p("a") * y + p("c")))

        return model, guide

    def relaxed_draws(self, loss, draws, seed, scale=None):
        pyro = self.pyro
        pyro.clear_param_store()
        pyro.set_rng_seed(seed)
        model, guide = self._handled(*self._relaxed(), scale)
        y, values, grads = self._y(RELAXED_Y), [], {k: [] for k in RELAXED_PARAMS}
        for _ in range(draws):
            values.append(-loss.loss_and_grads(model, guide, y))
            for name in grads:
                leaf = pyro.param(name).unconstrained()
                grads[name].append(-leaf.grad.item())
                leaf.grad = None
        return np.array(values), {k: np.array(v) for k, v in grads.items()}

    def conditional_agreement(self, kind, logits, seed):
        torch = self.torch
        from pyro_concrete.distributions import conditional

        torch.manual_seed(seed)
        logits = torch.tensor(logits, dtype=torch.float32)
        if kind == "bernoulli":
            b = torch.bernoulli(torch.full(logits.shape, 0.5))
            z = conditional.bernoulli_conditional(logits, b)
            return float(((z > 0).float() == b).float().mean())
        b = torch.nn.functional.one_hot(
            torch.randint(logits.shape[-1], logits.shape[:-1]), logits.shape[-1]
        )
        z = conditional.categorical_conditional(logits, b.float())
        return float((z.argmax(-1) == b.argmax(-1)).float().mean())

    def conditional_mixture(self, kind, logits, draws, seed):
        torch = self.torch
        from pyro_concrete.distributions import conditional

        torch.manual_seed(seed)
        logits = torch.tensor(logits, dtype=torch.float32).expand(draws, len(logits))
        if kind == "bernoulli":
            z = conditional.bernoulli_conditional(logits, torch.bernoulli(logits.sigmoid()))
            return z[:, 0].numpy()
        b = torch.distributions.OneHotCategorical(logits=logits).sample()
        return conditional.categorical_conditional(logits, b)[:, 0].numpy()

    def straight_through_gradients(
        self, cls_name, logits, rao_samples, draws, seed, temperature=0.5, reinmax=False
    ):
        torch = self.torch
        torch.manual_seed(seed)
        # One row of logits per draw, so that one backward pass gives every draw's gradient.
        rows = torch.tensor(logits, dtype=torch.float32).repeat(draws, 1).requires_grad_()
        n = rows.shape[-1]
        weight, target = torch.arange(1.0, n + 1), torch.tensor([0.2, 0.9, 0.1])[:n]
        cls = getattr(self.module, cls_name)
        x = cls(temperature, logits=rows, rao_samples=rao_samples, reinmax=reinmax).rsample()
        (grads,) = torch.autograd.grad((weight * (x - target) ** 2).sum(), rows)
        return x.detach().numpy(), grads.numpy()

    def run(self, problem, loss, guide_kind="discrete", subsample_size=None):
        from tests.estimator_references import problem as make

        params, y = make(problem)
        self.pyro.clear_param_store()
        model, guide = self._problem(problem, params, guide_kind, subsample_size)
        loss.loss_and_grads(model, guide, self._y(y))

    def guide_runs(self, problem, loss, y=None, subsample_size=None, guide_kind="discrete"):
        from tests.estimator_references import problem as make

        params, data = make(problem)
        self.pyro.clear_param_store()
        model, guide = self._problem(problem, params, guide_kind, subsample_size)
        runs = []

        def recorded(y):
            trace = self.pyro.poutine.trace(guide).get_trace(y)
            runs.append(trace.nodes["data"]["value"].tolist())

        # the runs of a step after the first, which also checks how model and guide read
        # the relaxed values (REBAR and RELAX: one more relaxed pass)
        loss.loss_and_grads(model, recorded, self._y(data if y is None else y))
        runs.clear()
        loss.loss_and_grads(model, recorded, self._y(data if y is None else y))
        return runs

    def train_sbn(self, loss, train, test, steps, seed, relaxed=False):
        pyro, torch = self.pyro, self.torch
        relax, discrete_bound = self.module.relax, self.module.discrete_bound
        from pyro_concrete.problems import SigmoidBeliefNet

        pyro.clear_param_store()
        pyro.set_rng_seed(seed)
        x, x_test = (torch.tensor(a, dtype=torch.float32) for a in (train, test))
        sbn = SigmoidBeliefNet(latents=(20,), hidden=None, observed=x.shape[1])
        model, guide = sbn.model, sbn.guide
        if relaxed:
            model, guide = relax(model, 0.5), relax(guide, 2 / 3)

        def bound():
            return discrete_bound(sbn.model, guide, x_test, num_samples=20) / len(x_test)

        before = bound()
        svi = pyro.infer.SVI(model, guide, pyro.optim.Adam({"lr": 3e-3}), loss)
        for _ in range(steps):
            svi.step(x)
        return before, bound()


def _tuned_name(name: str) -> bool:
    tags = ("_rebar_", "_relax_", "relax_eta", "rebar_eta", "doublecv_", "rodeo_")
    return any(tag in name for tag in tags)


# ----------------------------------------------------------------------------- NumPyro


class NumpyroEstimators(EstimatorBackend):
    name = "numpyro"

    def runs_the_default(self, options):
        # vmap is the losses' default, and one particle is drawn without vmap or lax.map
        return "vectorize_particles" in options and (
            options["vectorize_particles"] is True or options.get("num_particles", 1) == 1
        )

    def __init__(self) -> None:
        import jax
        import numpyro

        import numpyro_concrete

        self.jax, self.numpyro, self.module = jax, numpyro, numpyro_concrete

    def _problem(
        self, problem: str, params: dict, guide_kind: str = "discrete", subsample_size=None
    ) -> tuple:
        numpyro, jnp = self.numpyro, self.jax.numpy
        dist = numpyro.distributions
        select = self.module.select
        one_hot = self.module.OneHotCategorical

        def p(name):
            return numpyro.param(name, jnp.asarray(params[name], jnp.float32))

        mask = jnp.asarray(MASK if problem == "masked" else 0.0, jnp.float32)

        def model(y):
            if guide_kind == "global":
                numpyro.sample("g", dist.Bernoulli(logits=0.0))
            if problem == "continuous":
                w = numpyro.sample("w", dist.Normal(0.0, 1.0))
            with numpyro.plate("data", y.shape[0], subsample_size=subsample_size) as idx:
                y = y[idx]
                if problem == "continuous":
                    z = numpyro.sample("z", dist.Bernoulli(logits=p("prior")).to_event(1))
                    mean = z + w
                elif problem == "bernoulli":
                    if guide_kind == "hierarchical":
                        numpyro.sample("u", dist.Bernoulli(logits=0.0))
                    z = numpyro.sample("z", dist.Bernoulli(logits=p("prior")).to_event(1))
                    if guide_kind == "where":
                        z = jnp.where(z > 0.5, 1.0, 0.0)
                    elif guide_kind == "round":
                        z = jnp.round(z)
                    mean = z @ p("W")
                elif problem in ("categorical", "masked"):
                    c1 = numpyro.sample("c1", one_hot(logits=p("prior1") + mask))
                    c2 = numpyro.sample("c2", one_hot(logits=p("prior2")))
                    if guide_kind == "argmax":
                        mean = p("mu").T[c1.argmax(-1)] + select(p("nu"), c2[..., None, :])
                    else:
                        mean = select(p("mu"), c1[..., None, :]) + select(p("nu"), c2[..., None, :])
                else:
                    b = numpyro.sample("b", dist.Bernoulli(logits=p("prior_b")).to_event(1))
                    c = numpyro.sample("c", dist.Categorical(logits=p("prior_c")))
                    if guide_kind == "indexing":
                        mean = b @ p("W") + p("mu").T[c]
                    else:
                        index = (
                            c[..., None, :]
                            if jnp.issubdtype(c.dtype, jnp.floating)
                            else c[..., None]
                        )
                        mean = b @ p("W") + select(p("mu"), index)
                numpyro.sample("y", dist.Normal(mean, 1.0).to_event(1), obs=y)

        def guide(y):
            if guide_kind == "global":
                numpyro.sample("g", dist.Bernoulli(logits=0.0))
            if problem == "continuous":
                w = numpyro.sample("w", dist.Normal(p("m"), 0.5))
            with numpyro.plate("data", y.shape[0], subsample_size=subsample_size) as idx:
                y = y[idx]
                if problem == "continuous":
                    logits = jnp.broadcast_to(p("a") + p("c") * w, (y.shape[0], 2))
                    numpyro.sample("z", dist.Bernoulli(logits=logits).to_event(1))
                elif problem == "bernoulli":
                    a = p("a")
                    if guide_kind == "hierarchical":
                        a = a + numpyro.sample("u", dist.Bernoulli(logits=0.0))[:, None]
                    if guide_kind == "relaxed":
                        fn = self.module.BinaryConcrete(0.5, logits=a)
                    else:
                        fn = dist.Bernoulli(logits=a)
                    infer = {"enumerate": "parallel"} if guide_kind == "enumerated" else {}
                    if guide_kind != "missing":
                        numpyro.sample("z", fn.expand([y.shape[0], 3]).to_event(1), infer=infer)
                    if guide_kind == "extra":
                        numpyro.sample("e", dist.Bernoulli(logits=p("a")).to_event(1))
                elif problem in ("categorical", "masked"):
                    numpyro.sample("c1", one_hot(logits=p("a1") + mask))
                    if guide_kind == "family":
                        numpyro.sample("c2", dist.Categorical(logits=p("a2")))
                    else:
                        numpyro.sample("c2", one_hot(logits=p("a2")))
                else:
                    b = numpyro.sample("b", dist.Bernoulli(logits=p("a")).to_event(1))
                    numpyro.sample("c", dist.Categorical(logits=p("g") + b @ p("V")))

        if guide_kind == "model_scaled":
            return self.numpyro.handlers.scale(model, scale=3.0), guide
        return model, guide

    def _handled(self, model, guide, scale=None, mask=None) -> tuple:
        """``model`` and ``guide`` under ``handlers.scale`` and ``handlers.mask``."""
        handlers, jnp = self.numpyro.handlers, self.jax.numpy
        if scale is not None:
            scale = jnp.asarray(scale, jnp.float32)
            model, guide = (handlers.scale(f, scale=scale) for f in (model, guide))
        if mask is not None:
            mask = jnp.asarray(mask)
            model, guide = (handlers.mask(f, mask=mask) for f in (model, guide))
        return model, guide

    def _init(self, model, guide, y, loss, seed):
        jax = self.jax
        from numpyro.infer import SVI
        from numpyro.optim import Adam

        guide = loss.tunable(guide) if hasattr(loss, "tunable") else guide
        svi = SVI(model, guide, Adam(0.05), loss)
        state = svi.init(jax.random.PRNGKey(seed), y)
        return svi, guide, state

    def gradient_draws(
        self,
        problem,
        params,
        y,
        loss,
        draws,
        seed,
        tune_steps=0,
        subsample_size=None,
        scale=None,
        mask=None,
    ):
        jax = self.jax
        model, guide = self._problem(problem, params, subsample_size=subsample_size)
        model, guide = self._handled(model, guide, scale, mask)
        y = jax.numpy.asarray(y, jax.numpy.float32)
        svi, guide, state = self._init(model, guide, y, loss, seed)
        param_map, moved = svi.get_params(state), {}
        if tune_steps:
            param_map, moved = self._tune(svi, model, guide, y, loss, state, params, tune_steps)

        def grad(key):
            g = jax.grad(lambda p: loss.loss(key, p, model, guide, y))(param_map)
            return {k: -g[k] for k in params}

        keys = jax.random.split(jax.random.PRNGKey(seed + 1), draws)
        out = jax.jit(jax.vmap(grad), compiler_options=FAST_COMPILE)(keys)
        return {**{k: np.asarray(v) for k, v in out.items()}, **moved}

    def _tune(self, svi, model, guide, y, loss, state, params, steps):
        """Adam (lr 0.05) on the unconstrained tuned quantities only: the parameters
        after it, and how far each tuned quantity moved."""
        jax, jnp = self.jax, self.jax.numpy
        u = svi.optim.get_params(state.optim_state)
        names = [k for k in u if _tuned_name(k)]

        @partial(jax.jit, compiler_options=FAST_COMPILE)
        def step(u, m, v, t, key):
            g = jax.grad(lambda u: loss.loss(key, svi.constrain_fn(u), model, guide, y))(u)
            m = {k: 0.9 * m[k] + 0.1 * g[k] for k in names}
            v = {k: 0.999 * v[k] + 0.001 * g[k] ** 2 for k in names}
            for k in names:
                step = 0.05 * (m[k] / (1 - 0.9**t)) / (jnp.sqrt(v[k] / (1 - 0.999**t)) + 1e-8)
                u = dict(u, **{k: u[k] - step})
            return u, m, v

        m = {k: jnp.zeros_like(u[k]) for k in names}
        v, before = dict(m), dict(u)
        for t, key in enumerate(jax.random.split(jax.random.PRNGKey(5), steps), start=1):
            u, m, v = step(u, m, v, t, key)
        return svi.constrain_fn(u), {f"tuned/{k}": np.asarray(u[k] - before[k]) for k in names}

    def objective_values(self, problem, params, y, loss, draws, scale=None):
        jax = self.jax
        model, guide = self._handled(*self._problem(problem, params), scale)
        y = jax.numpy.asarray(y, jax.numpy.float32)
        svi, guide, state = self._init(model, guide, y, loss, 0)
        param_map = svi.get_params(state)
        keys = jax.random.split(jax.random.PRNGKey(1), draws)
        values = jax.jit(
            jax.vmap(lambda key: -loss.loss(key, param_map, model, guide, y)),
            compiler_options=FAST_COMPILE,
        )(keys)
        return np.asarray(values)

    def _relaxed(self) -> tuple:
        numpyro, jnp = self.numpyro, self.jax.numpy
        lam_p, lam_q = RELAXED_TEMPERATURES
        concrete = self.module.LogitBinaryConcrete

        def p(name):
            return numpyro.param(name, jnp.asarray(RELAXED_PARAMS[name], jnp.float32))

        def model(y):
            with numpyro.plate("data", len(y)):
                z = numpyro.sample(
                    "z", concrete(lam_p, logits=jnp.broadcast_to(p("prior"), y.shape))
                )
                likelihood = numpyro.distributions.Normal(p("w") * self.jax.nn.sigmoid(z), 1.0)
                numpyro.sample("y", likelihood, obs=y)

        def guide(y):
            with numpyro.plate("data", len(y)):
                numpyro.sample("z", concrete(lam_q, logits=p("a") * y + p("c")))

        return model, guide

    def relaxed_draws(self, loss, draws, seed, scale=None):
        jax = self.jax
        model, guide = self._handled(*self._relaxed(), scale)
        y = jax.numpy.asarray(RELAXED_Y, jax.numpy.float32)
        svi, guide, state = self._init(model, guide, y, loss, seed)
        param_map = svi.get_params(state)

        def value_and_grad(key):
            value, g = jax.value_and_grad(lambda p: loss.loss(key, p, model, guide, y))(param_map)
            return -value, {k: -g[k] for k in RELAXED_PARAMS}

        keys = jax.random.split(jax.random.PRNGKey(seed + 1), draws)
        values, grads = jax.jit(jax.vmap(value_and_grad), compiler_options=FAST_COMPILE)(keys)
        return np.asarray(values), {k: np.asarray(v) for k, v in grads.items()}

    def conditional_agreement(self, kind, logits, seed):
        jax, jnp = self.jax, self.jax.numpy
        from numpyro_concrete.distributions import conditional

        k1, k2 = jax.random.split(jax.random.PRNGKey(seed))
        logits = jnp.asarray(logits, jnp.float32)
        if kind == "bernoulli":
            b = jax.random.bernoulli(k1, 0.5, logits.shape).astype(jnp.float32)
            z = conditional.bernoulli_conditional(k2, logits, b)
            return float(jnp.mean((z > 0) == (b > 0)))
        index = jax.random.randint(k1, logits.shape[:-1], 0, logits.shape[-1])
        b = jax.nn.one_hot(index, logits.shape[-1])
        z = conditional.categorical_conditional(k2, logits, b)
        return float(jnp.mean(jnp.argmax(z, -1) == index))

    def conditional_mixture(self, kind, logits, draws, seed):
        jax, jnp = self.jax, self.jax.numpy
        from numpyro_concrete.distributions import conditional

        k1, k2 = jax.random.split(jax.random.PRNGKey(seed))
        logits = jnp.broadcast_to(jnp.asarray(logits, jnp.float32), (draws, len(logits)))
        if kind == "bernoulli":
            b = jax.random.bernoulli(k1, jax.nn.sigmoid(logits)).astype(jnp.float32)
            return np.asarray(conditional.bernoulli_conditional(k2, logits, b)[:, 0])
        b = jax.nn.one_hot(jax.random.categorical(k1, logits), logits.shape[-1])
        return np.asarray(conditional.categorical_conditional(k2, logits, b)[:, 0])

    def straight_through_gradients(
        self, cls_name, logits, rao_samples, draws, seed, temperature=0.5, reinmax=False
    ):
        jax, jnp = self.jax, self.jax.numpy
        n = len(logits)
        weight, target = jnp.arange(1.0, n + 1), jnp.array([0.2, 0.9, 0.1])[:n]
        cls = getattr(self.module, cls_name)
        options = {"rao_samples": rao_samples, "reinmax": reinmax}

        def value_and_grad(key):
            def f(logits):
                x = cls(temperature, logits=logits, **options).sample(key)
                return jnp.sum(weight * (x - target) ** 2), x

            (_, x), g = jax.value_and_grad(f, has_aux=True)(jnp.asarray(logits, jnp.float32))
            return x, g

        keys = jax.random.split(jax.random.PRNGKey(seed), draws)
        x, g = jax.jit(jax.vmap(value_and_grad), compiler_options=FAST_COMPILE)(keys)
        return np.asarray(x), np.asarray(g)

    def run(self, problem, loss, guide_kind="discrete", subsample_size=None):
        jax = self.jax
        from tests.estimator_references import problem as make

        params, y = make(problem)
        model, guide = self._problem(problem, params, guide_kind, subsample_size)
        y = jax.numpy.asarray(y, jax.numpy.float32)
        svi, guide, state = self._init(model, guide, y, loss, 0)
        jax.jit(svi.update)(state, y)

    def guide_runs(self, problem, loss, y=None, subsample_size=None, guide_kind="discrete"):
        jax = self.jax
        from numpyro import handlers

        from tests.estimator_references import problem as make

        params, data = make(problem)
        model, guide = self._problem(problem, params, guide_kind, subsample_size)
        y = jax.numpy.asarray(data if y is None else y, jax.numpy.float32)
        svi, _, state = self._init(model, guide, y, loss, 0)
        runs = []

        def recorded(y):
            with handlers.trace() as trace:
                guide(y)
            values = [s["value"] for s in trace.values() if s["type"] == "sample"]
            if not any(isinstance(v, jax.core.Tracer) for v in values):  # DisARM's check
                runs.append(np.asarray(trace["data"]["value"]).tolist())

        loss.loss(jax.random.PRNGKey(1), svi.get_params(state), model, loss.tunable(recorded), y)
        return runs

    def train_sbn(self, loss, train, test, steps, seed, relaxed=False):
        jax, relax, discrete_bound = self.jax, self.module.relax, self.module.discrete_bound
        from numpyro.infer import SVI
        from numpyro.optim import Adam

        from numpyro_concrete.problems import SigmoidBeliefNet

        x, x_test = (jax.numpy.asarray(a, jax.numpy.float32) for a in (train, test))
        sbn = SigmoidBeliefNet(latents=(20,), hidden=None, observed=x.shape[1])
        model, guide = sbn.model, sbn.guide
        if relaxed:
            model, guide = relax(model, 0.5), relax(guide, 2 / 3)
        guide = loss.tunable(guide) if hasattr(loss, "tunable") else guide
        svi = SVI(model, guide, Adam(3e-3), loss)
        state = svi.init(jax.random.PRNGKey(seed), x)

        def bound(state):
            params, key = svi.get_params(state), jax.random.PRNGKey(seed + 1)
            total = discrete_bound(key, sbn.model, guide, params, x_test, num_samples=20)
            return total / len(x_test)

        before = bound(state)
        update = jax.jit(svi.update)
        for _ in range(steps):
            state, _ = update(state, x)
        return before, bound(state)
