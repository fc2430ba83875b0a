"""RODEO: control variates from the Gibbs Stein operator of the guide (Shi, Zhou, Hwang,
Titsias & Mackey 2022)."""

import math
from collections.abc import Callable

import torch

from .linearised import LinearisedELBO

__all__ = ["RodeoELBO"]


class RodeoELBO(LinearisedELBO):
    r"""The discrete ELBO ``E_q[f(b)]``, ``f(b) = log p(x, b) - log q(b)``, with the RODEO
    gradient (Shi et al. 2022, the RODEO estimator) for the logits ``l`` of the guide's
    ``Bernoulli`` sites, ``theta = sigmoid(l)``, ``s(y) = y - theta``, from ``K >= 2``
    samples per data point (:class:`LinearisedELBO`: ``d_k`` the model's derivative at
    ``b_k``).  The Gibbs Stein operator of ``q``,

    .. math::
        (A h)(y) = \sum_i q_i(1 - y_i) \, [h(y^{(i)}) - h(y)],

    ``y^(i)`` ``y`` with coordinate ``i`` flipped and ``q_i(1 - y_i)`` the guide's
    probability of the flipped value, has ``E_q[(A h)(b)] = 0`` for every ``h`` that does
    not depend on ``b``.  With functions ``g_k, h_k`` of ``y`` built from the other
    samples only,

    .. math::
        g = \frac1K \sum_k \Big[\Big(f_k - \frac{1}{K-1} \sum_{j \ne k}
            \big(f_j + \alpha (A g_j)(b_j)\big)\Big) s(b_k)
            + \beta \, (A [h_k s])(b_k)\Big],

    unbiased for any ``alpha``, ``beta`` and network: each Stein term is taken at a sample
    that its function does not depend on.  ``(g_k, h_k)(y) = phi(u_k(y), m_k)`` is a
    network of one hidden layer (``hidden`` leaky-ReLU units, two outputs) of the
    first-order expansion of ``f`` around the other samples,
    ``u_k(y) = (1/(K-1)) sum_{j != k} d_j . (y - b_j)``, and of their mean
    ``m_k = (1/(K-1)) sum_{j != k} f_j``; evaluating it at the ``y^(i)`` costs no model
    evaluation.  The model's parameters, and the reparameterised continuous sites, get
    ``(1/K) sum_k nabla f_k`` (the zero-mean score of ``log q`` left out), as RLOO's.
    ``alpha = beta = 0`` is RLOO.

    :param num_particles: ``K >= 2``, the samples per data point.
    :param alpha: the weight of the baseline's control variate (its initial value if
        tuned).
    :param beta: the weight of the estimate's control variate (its initial value if tuned).
    :param hidden: the network's hidden units, initialised at fixed, evenly spread
        directions of its two inputs.
    :param tune: learn ``alpha``, ``beta`` and the network, the ``pyro.param`` sites
        ``"rodeo_alpha"``, ``"rodeo_beta"`` and ``"rodeo_{hidden,output}_{weight,bias}"``
        (parameters of :attr:`tuned`), by descending the second moment of the estimate of
        the gradient with respect to the logits; SVI's optimiser updates them.
    :param vectorize_particles: draw the samples in one vectorised pass.
    """

    def __init__(
        self,
        num_particles: int = 2,
        alpha: float = 0.0,
        beta: float = 0.0,
        hidden: int = 8,
        tune: bool = True,
        vectorize_particles: bool = False,
    ) -> None:
        if not isinstance(hidden, int) or hidden < 1:
            raise ValueError(f"RodeoELBO: hidden must be a positive int, got {hidden!r}.")
        super().__init__(num_particles, tune, vectorize_particles)
        self.alpha, self.beta, self.hidden = float(alpha), float(beta), hidden

    def _initial(self) -> dict[str, torch.Tensor]:
        """The initial values: ``alpha``, ``beta``, and a network whose hidden units read
        its two inputs along ``hidden`` directions evenly spread on the circle, and whose
        outputs are their means along the same directions."""
        angle = 2 * math.pi * torch.arange(self.hidden) / self.hidden
        directions = torch.stack([angle.cos(), angle.sin()])
        return {
            "rodeo_alpha": torch.tensor(self.alpha),
            "rodeo_beta": torch.tensor(self.beta),
            "rodeo_hidden_weight": directions,
            "rodeo_hidden_bias": torch.zeros(self.hidden),
            "rodeo_output_weight": directions.T / self.hidden,
            "rodeo_output_bias": torch.zeros(2),
        }

    def _network(
        self, params: dict, u: torch.Tensor, m: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(g, h)`` at the inputs ``u`` and ``m`` (of one shape)."""
        inputs = torch.stack(torch.broadcast_tensors(u, m), -1)
        layer = inputs @ params["rodeo_hidden_weight"] + params["rodeo_hidden_bias"]
        out = torch.nn.functional.leaky_relu(layer, 0.3) @ params["rodeo_output_weight"]
        out = out + params["rodeo_output_bias"]
        return out[..., 0], out[..., 1]

    def _particle(
        self, model: Callable, guide: Callable, args: tuple, kwargs: dict
    ) -> tuple[torch.Tensor, torch.Tensor]:
        # read before the passes (see DoubleCvELBO)
        params = {k: self._tuned(k, init) for k, init in self._initial().items()}
        alpha, beta = params["rodeo_alpha"], params["rodeo_beta"]
        samples, _, _, kept = self._samples(model, guide, args, kwargs)
        f, logits, b, d = samples.value, kept["logits"], kept["value"], kept["derivative"]
        theta = logits.detach().sigmoid()
        spread, sign = b - theta, 1 - 2 * b  # s(b_k), and y^(i)_i - y_i at y = b_k
        flip = theta * (1 - b) + (1 - theta) * b  # q_i(1 - b_i)
        slope, level = self._others(d), self._others(f.detach())
        # u_k at b_k and at each neighbour b_k^(i)
        at_b = (slope * b).sum(-1) - self._others((d * b).sum(-1))
        g_b, h_b = self._network(params, at_b, level)
        g_i, h_i = self._network(params, at_b.unsqueeze(-1) + slope * sign, level.unsqueeze(-1))
        stein_g = (flip * (g_i - g_b.unsqueeze(-1))).sum(-1)
        # (A [h s])(b_k)_l = s_l sum_i q_i(1 - b_i) (h_i - h) + q_l(1 - b_l) h_l (1 - 2 b_l)
        stein_hs = spread * (flip * (h_i - h_b.unsqueeze(-1))).sum(-1, keepdim=True)
        stein_hs = stein_hs + flip * h_i * sign
        signal = f.detach() - self._others(f.detach() + alpha * stein_g)
        estimate = (signal.unsqueeze(-1) * spread + beta * stein_hs).mean(0)
        score = sum(samples.score.values(), torch.zeros(()))
        surrogate = (signal.detach() * score + samples.direct).mean(0).sum()
        surrogate = surrogate + ((beta * stein_hs).detach() * logits).mean(0).sum()
        return f.mean(0).sum(), surrogate - self._variance(estimate)
