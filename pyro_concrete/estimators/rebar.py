"""REBAR: the score function with the Concrete relaxation as control variate (Tucker,
Mnih, Maddison, Lawson & Sohl-Dickstein 2017)."""

import contextlib
import warnings
from collections.abc import Callable, Iterable, Iterator

import torch
from pyro import poutine
from torch.distributions import constraints

from ..distributions.conditional import bernoulli_conditional, categorical_conditional
from ..plates import factor_dims
from .reads import check_differentiable_reads
from .traces import (
    DiscreteSampler,
    DiscreteSite,
    LogitsProbe,
    RelaxedSampler,
    costs,
    discrete_pass,
    relaxed_pass,
    subsample_sites,
    validated,
)
from .tuning import TunedELBO

__all__ = ["RebarELBO"]

#: what the tuned quantities descend the variance of the estimate for
TUNE_ON = ("parameters", "logits")


def conditional_point(site: DiscreteSite) -> torch.Tensor:
    """``z~ ~ p(z | b)`` for a site of the discrete pass (``conditional.py``)."""
    if site.kind == "bernoulli":
        return bernoulli_conditional(site.logits, site.value)
    b = site.value
    if site.kind == "categorical":
        b = torch.nn.functional.one_hot(b, site.logits.size(-1)).to(site.logits.dtype)
    return categorical_conditional(site.logits, b)


def fixed_logits(sites: dict[str, DiscreteSite]) -> bool:
    """Whether the control variate scores the guide's relaxed values with the logits held
    fixed: where the guide has one discrete site, whose logits then read no relaxed value.
    ``c`` is then ``f(sigma_lam(z))`` with ``log q`` continued at logits fixed at their
    value, a function of ``z`` alone in the parameters, and REBAR is unbiased for any
    function of ``z`` (Tucker et al. 2017, Eq. 6; Grathwohl et al. 2018, Eq. 5): the terms
    this drops, the derivative of ``c`` in the logits at fixed ``z``, have the same mean at
    ``z`` and at ``z~`` (both ``~ p(z)``) and only add variance.  Where a site's logits read
    another's relaxed value, holding them would also drop the derivative along ``z``."""
    return len(sites) == 1


class ControlVariateELBO(TunedELBO):
    r"""The score-function gradient of the discrete ELBO with a control variate ``c`` of
    the relaxed point, corrected to stay unbiased (Tucker et al. 2017, Eq. 6; Grathwohl et
    al. 2018, Eq. 5):

    .. math::
        g = [f(b) - c(\tilde z)] \nabla \log q(b) + \nabla f(b) + \nabla c(z)
            - \nabla c(\tilde z),

    ``z`` the continuous sample that ``b = H(z)`` rounds, ``z~ ~ p(z | b)`` reparameterised
    with ``b`` fixed.  ``nabla f(b)`` leaves out the zero-mean score of ``log q(b)``; the
    model's ``param`` sites get ``nabla f(b)`` alone (the correction has zero mean for
    them); any other tensor the passes read (a ``PyroModule``'s parameter used outside
    ``forward``, a tensor closed over) gets ``g``, unbiased wherever it enters.  With
    ``tune``, the control variate's own quantities descend the gradient of the estimate's
    second moment ``sum g^2``, which is the variance up to a constant (the mean does not
    depend on them): of the estimate for the logits of the guide's discrete sites, each
    element's (``tune_on="logits"``, the default: the distribution's parameters, as in
    Grathwohl et al. 2018, Sec. 3.3; the second-order pass stops at the logits instead of
    running through the guide's network), or for the guide's parameters
    (``tune_on="parameters"``).

    ``loss_and_grads`` and ``differentiable_loss`` give every leaf these gradients,
    averaged over the particles; the tuned quantities are the parameters of :attr:`tuned`,
    a module that ``elbo(model, guide)`` holds, so a torch optimiser (and DDP) trains them
    with the rest.
    """

    def __init__(
        self, num_particles: int, vectorize_particles: bool, tune_on: str = "logits"
    ) -> None:
        if tune_on not in TUNE_ON:
            raise ValueError(
                f"{type(self).__name__}: tune_on must be one of {TUNE_ON}, got {tune_on!r}."
            )
        super().__init__(num_particles, vectorize_particles)
        self.tune_on = tune_on

    def _setup(self, sites: dict[str, DiscreteSite]) -> tuple[dict, dict]:
        """The temperature of each site and the control variate's quantities by name, read
        before the relaxed passes: with ``module_local_params``, running the ``PyroModule``
        that holds them takes the ``unconstrained`` reference off the param store's values,
        which the passes' ``pyro.param`` statements then put back for ``SVI``."""
        raise NotImplementedError

    def _control_variate(
        self,
        relaxed_elbo: torch.Tensor,
        values: dict[str, torch.Tensor],
        dims: set,
        ndim: int,
        params: dict,
    ) -> torch.Tensor:
        """``c`` per element, from ``f`` at the relaxed point, the relaxed values and the
        quantities of ``_setup``."""
        raise NotImplementedError

    def _particle(
        self, model: Callable, guide: Callable, args: tuple, kwargs: dict
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``f(b)`` and a surrogate whose gradient is the estimate for every tensor the passes
        read, as ``Trace_ELBO``'s: ``g`` for the guide's parameters and any other leaf (a
        ``PyroModule``'s parameter read outside ``forward``, a tensor closed over; ``g`` is
        unbiased for a model's leaf too), ``nabla f(b)`` alone for the model's ``param``
        sites (the control variate's terms have mean zero for them and only add variance)
        and ``-nabla sum g^2 / N`` for the tuned quantities (``N`` particles: the average's
        second moment, whose cross terms between independent particles have a gradient of
        mean zero).  Without gradients (``loss``, ``SVI.evaluate_loss``) only the discrete
        pass runs."""
        name = type(self).__name__
        probe = None
        if self.tune and self.tune_on == "logits" and torch.is_grad_enabled():
            probe = LogitsProbe()
            guide = probe(guide)
        hard = DiscreteSampler(estimator=name)
        model_trace, guide_trace = discrete_pass(model, guide, args, kwargs, hard)
        dims, ndim = factor_dims(model_trace, guide_trace)
        cost = costs(model_trace, guide_trace, set(hard.sites), dims, ndim)
        if not torch.is_grad_enabled():
            return cost.value.sum(), torch.zeros(())
        # before the tuned quantities' PyroModule runs: with module_local_params it takes
        # the ``unconstrained`` reference off the param store's values
        guide_params = _param_tensors(guide_trace)
        model_params = _param_tensors(model_trace, exclude=guide_trace)
        # the model's parameters are held fixed at the relaxed points (their estimate is
        # nabla f(b)); the relaxed passes of a step after its first run without validation
        # (the discrete pass validated the same programs at the same data)
        with _held_fixed(model_params.values()), validated(self._first_step):
            at_z, at_conditional, tuned = self._relaxed_passes(
                model, guide, args, kwargs, hard, guide_trace, dims, ndim
            )
        score = sum(cost.score.values(), torch.zeros(()))
        surrogate = cost.value.detach() * score + cost.direct + at_z - at_conditional
        # -c(z~) d log q, with c(z~) differentiable in its own quantities but not in the
        # guide's parameters: the second factor is zero in value.
        surrogate = (surrogate + at_conditional * (score.detach() - score)).sum()
        if not (surrogate.requires_grad and tuned):
            return cost.value.sum(), surrogate
        # The tuned quantities get the gradient of the estimate's second moment in place of
        # the surrogate's, a linear term adding the difference.
        variance_of = probe.deltas if probe is not None else guide_params
        inputs = [*tuned.values(), *(variance_of.values() if self.tune else ())]
        grads = _gradients(surrogate, inputs, create_graph=self.tune)
        own = grads[: len(tuned)]
        if self.tune:
            moment = sum(
                (g.pow(2).sum() for g in grads[len(tuned) :] if g is not None), torch.zeros(())
            )
            second = _gradients(moment / self.num_particles, tuned.values())
            own = [
                a if b is None else b if a is None else a + b
                for a, b in zip(own, second, strict=True)
            ]
        for tensor, g in zip(tuned.values(), own, strict=True):
            if g is not None:
                surrogate = surrogate - (tensor * g.detach()).sum()
        return cost.value.sum(), surrogate

    def _relaxed_passes(
        self,
        model: Callable,
        guide: Callable,
        args: tuple,
        kwargs: dict,
        hard: DiscreteSampler,
        guide_trace,
        dims: set[int],
        ndim: int,
    ) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """``c(z)`` and ``c(z~)`` per element, and the tuned quantities they read by name."""
        name = type(self).__name__
        tuned = {}

        def reading_tuned(fn: Callable, *fn_args):
            with poutine.trace(param_only=True) as capture:
                out = fn(*fn_args)
            tuned.update(_param_tensors(capture.trace))
            return out

        temperature, params = reading_tuned(self._setup, hard.sites)

        # Tuning, the relaxed passes run the guide again (no trace to reuse): its pyro.param
        # statements put back the reference that the tuned quantities' PyroModule takes off.
        # Every pass sees the data points of the discrete pass.
        reusable = None if self.tune else guide_trace
        guide = poutine.replay(guide, trace=subsample_sites(guide_trace))
        if self._first_step:  # how model and guide read the relaxed values
            at = RelaxedSampler(hard.sites, {k: s.z for k, s in hard.sites.items()}, temperature)
            check_differentiable_reads(
                lambda handler: relaxed_pass(
                    handler(model), handler(guide), args, kwargs, at, name
                ),
                at.values,
                name,
            )

        fixed = fixed_logits(hard.sites)

        def control_variate(
            points: dict[str, torch.Tensor], wrap: Callable, dims: set[int], ndim: int
        ) -> torch.Tensor:
            sampler = RelaxedSampler(hard.sites, points, temperature, fixed_logits=fixed)
            traces = relaxed_pass(wrap(model), wrap(guide), args, kwargs, sampler, name, reusable)
            relaxed = costs(*traces, set(hard.sites), dims, ndim)
            return reading_tuned(
                self._control_variate, relaxed.value, sampler.values, dims, ndim, params
            )

        conditional = {k: conditional_point(s) for k, s in hard.sites.items()}
        if self.vectorize_particles:
            # z and z~ in one relaxed pass: a plate of size 2 left of every other plate
            pair, dim = self._pair("relaxed_pair")
            stacked = {
                k: _stack(s.z, conditional[k], dim - s.event_dim) for k, s in hard.sites.items()
            }
            both = control_variate(stacked, pair, dims | {dim}, max(ndim, -dim))
            at_z, at_conditional = both.narrow(dim, 0, 1), both.narrow(dim, 1, 1)
        else:
            at_z = control_variate({k: s.z for k, s in hard.sites.items()}, _same, dims, ndim)
            at_conditional = control_variate(conditional, _same, dims, ndim)
        return at_z, at_conditional, tuned


#: what ``pyro.module`` says of a parameter that does not require gradients
_NOT_REGISTERED = ".* was not registered in the param store because requires_grad=False"


@contextlib.contextmanager
def _held_fixed(tensors: Iterable[torch.Tensor]) -> Iterator[None]:
    """The leaf ``tensors`` without gradients inside the block (what it computes from them is
    constant in them), back to requiring them after it."""
    live = [t for t in tensors if t.requires_grad]
    for t in live:
        t.requires_grad_(False)
    try:
        with warnings.catch_warnings():  # pyro.module's, for a parameter held fixed here
            warnings.filterwarnings("ignore", _NOT_REGISTERED, UserWarning)
            yield
    finally:
        for t in live:
            t.requires_grad_(True)


def _same(fn: Callable) -> Callable:
    return fn


def _stack(a: torch.Tensor, b: torch.Tensor, dim: int) -> torch.Tensor:
    """``a`` and ``b`` stacked at the negative ``dim``, both padded on the left first."""
    shape = (1,) * (-dim - 1 - a.dim()) + a.shape
    return torch.stack([a.reshape(shape), b.reshape(shape)], dim)


def _gradients(
    output: torch.Tensor, inputs, create_graph: bool = False
) -> list[torch.Tensor | None]:
    """``d output / d input`` for each of ``inputs`` (``None`` where it does not depend on
    it), the graph kept for the other gradients of the same pass."""
    inputs = list(inputs)
    if not (inputs and output.requires_grad):
        return [None] * len(inputs)
    return list(
        torch.autograd.grad(
            output, inputs, retain_graph=True, create_graph=create_graph, allow_unused=True
        )
    )


def _param_tensors(trace, exclude=None) -> dict[str, torch.Tensor]:
    """The unconstrained tensors of the trace's ``param`` sites (not in ``exclude``), by
    name."""
    names = set() if exclude is None else set(exclude.nodes)
    return {
        name: site["value"].unconstrained()
        for name, site in trace.nodes.items()
        if site["type"] == "param" and name not in names
    }


class RebarELBO(ControlVariateELBO):
    r"""The discrete ELBO ``E_q[f(b)]``, ``f(b) = log p(x, b) - log q(b)``, with the REBAR
    gradient (Tucker et al. 2017, Eq. 6): :class:`ControlVariateELBO` with
    ``c = eta f(sigma_lam(.))``, the ELBO's integrand at the relaxed point
    ``sigma_lam(z) = sigmoid(z / lam)`` (Bernoulli) / ``softmax(z / lam)`` (categorical), the
    discrete log-masses continued there.  Unbiased for any ``eta`` and ``lam``.  One
    ``eta`` scales the whole control variate, which keeps the estimator exact for a guide
    whose sites read each other's values; each site has its own ``lam``.

    The model is evaluated at relaxed values of its discrete sites: it must accept a point
    of (0, 1) for a ``Bernoulli`` and of the simplex for a categorical (read a
    ``Categorical`` with :func:`~pyro_concrete.select`); otherwise ``ValueError``.

    :param num_particles: particles averaged.
    :param temperature: the relaxation's temperature ``lam`` (its initial value if tuned).
    :param eta: the control variate's scale (its initial value if tuned).
    :param tune: learn ``eta`` and ``lam``, as ``pyro.param`` sites ``"rebar_eta"`` and
        ``"{site}_rebar_temperature"`` (parameters of :attr:`tuned`), by descending the
        estimator's variance; SVI's optimiser updates them, or any torch optimiser of
        ``RebarELBO(...)(model, guide).parameters()``.
    :param vectorize_particles: draw the particles in one vectorised pass, and evaluate
        the control variate at ``z`` and ``z~`` in one relaxed pass (a plate of size 2 left
        of the particles'), which needs model and guide to broadcast; else two passes.
    :param tune_on: tuning, descend the variance of the estimate for the ``"logits"`` of
        the guide's discrete sites (the default: cheaper, and as low a variance after
        tuning on the sigmoid belief net) or for its ``"parameters"``.
    """

    def __init__(
        self,
        num_particles: int = 1,
        temperature: float = 0.5,
        eta: float = 1.0,
        tune: bool = True,
        vectorize_particles: bool = False,
        tune_on: str = "logits",
    ) -> None:
        if not temperature > 0:
            raise ValueError(f"RebarELBO: temperature must be > 0, got {temperature!r}.")
        super().__init__(num_particles, vectorize_particles, tune_on)
        self.temperature, self.eta, self.tune = float(temperature), float(eta), tune

    def _setup(self, sites: dict[str, DiscreteSite]) -> tuple[dict, dict]:
        if not self.tune:
            return dict.fromkeys(sites, self.temperature), {"rebar_eta": self.eta}
        temperature = {
            k: self.tuned(
                f"{k}_rebar_temperature", torch.tensor(self.temperature), constraints.positive
            )
            for k in sites
        }
        return temperature, {"rebar_eta": self.tuned("rebar_eta", torch.tensor(self.eta))}

    def _control_variate(
        self,
        relaxed_elbo: torch.Tensor,
        values: dict[str, torch.Tensor],
        dims: set,
        ndim: int,
        params: dict,
    ) -> torch.Tensor:
        return params["rebar_eta"] * relaxed_elbo
