"""The importance-weighted bound of a model whose latent sites are all reparameterised (a
relaxed model), with its pathwise gradient (Burda, Grosse & Salakhutdinov 2016)."""

from collections.abc import Callable

import torch
from pyro import poutine
from pyro.infer.enum import get_importance_trace
from pyro.poutine.util import site_is_subsample

from .multi_sample import MultiSampleELBO

__all__ = ["ImportanceWeightedELBO"]


class ImportanceWeightedELBO(MultiSampleELBO):
    r"""The ``K``-sample bound ``L = log (1/K) sum_k w_k``, ``w_k = p(x, z_k) / q(z_k)``
    (Burda et al. 2016, Eq. 8), for a guide whose latent sites are all reparameterised
    (the relaxed model and guide of ``relax``, the ``m = 5`` and ``m = 50`` rows of
    Maddison et al. 2017, Sec. 5), with the pathwise gradient
    ``sum_k w~_k grad log w_k`` (``w~`` the normalised weights; Burda et al. Eq. 14).

    It is ``RenyiELBO(alpha=0)`` with the bound taken per element of the plates that
    enclose every site (``K`` samples per data point) from the element's unscaled weights
    and then multiplied by its scale.  Pyro's ``RenyiELBO`` sums the scaled log densities
    into the weights, so that a scale ``S`` (a subsampled data plate's ``N / B``,
    ``LightningSVI``'s ``num_data / batch``) gives ``log (1/K) sum_k w_k^S`` instead of
    ``S log (1/K) sum_k w_k``, a different objective; and it has no
    ``differentiable_loss``, which ``LightningSVI`` and ``elbo(model, guide)`` need.  A
    scale that differs between the sites of one data point is a ``ValueError``.  The
    discrete model's bound is :class:`~pyro_concrete.VimcoELBO`'s objective.

    :param num_particles: ``K >= 1``, the samples of the bound (``K = 1`` is the ELBO).
    :param vectorize_particles: draw them in one vectorised pass.
    """

    def __init__(self, num_particles: int = 2, vectorize_particles: bool = False) -> None:
        super().__init__(num_particles, vectorize_particles)

    def _pass(
        self, model: Callable, guide: Callable, args: tuple, kwargs: dict
    ) -> tuple[tuple[poutine.Trace, poutine.Trace], set[str], dict]:
        model_trace, guide_trace = get_importance_trace(
            "flat", self.max_plate_nesting, model, guide, args, kwargs
        )
        for name, site in guide_trace.nodes.items():
            latent = site["type"] == "sample" and not site["is_observed"]
            if latent and not site_is_subsample(site) and not site["fn"].has_rsample:
                raise ValueError(
                    f"ImportanceWeightedELBO: guide site {name!r} is a "
                    f"{type(site['fn']).__name__}, which is not reparameterised, and the "
                    "gradient here is pathwise. Relax the model and the guide "
                    "(pyro_concrete.relax), or, for discrete sites, use VimcoELBO (the "
                    "same bound with score-function gradients)."
                )
        return (model_trace, guide_trace), set(), {}

    def _particle(
        self, model: Callable, guide: Callable, args: tuple, kwargs: dict
    ) -> tuple[torch.Tensor, torch.Tensor]:
        _, log_w, scale, _ = self._samples(model, guide, args, kwargs)
        bound = (scale * self._bound(log_w)).sum()
        return bound, bound
