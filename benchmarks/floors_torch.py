"""The estimators written directly in torch on a one-layer sigmoid belief net: the floors
that ``estimators.py`` times the library's Pyro estimators against.

No Pyro and no tracing: the guide is ``q(b | x) = Bernoulli(b; sigmoid(E(x)))`` and the model
``p(x, b) = Bernoulli(b; 1/2) Bernoulli(x; sigmoid(D(b)))`` for an affine encoder ``E`` and
decoder ``D`` (the ``nn.Linear`` modules of ``SigmoidBeliefNet(latents=(H,), hidden=None)``,
``sbn.encoder[0][0]`` and ``sbn.decoder[0][0]``), and every
estimator is a few tensor operations on the logits ``alpha = E(x)``.  Each floor computes the
same estimator as the library's loss (``tests/test_floors_torch.py`` compares their mean
gradients with the exact one, by enumeration), per data point:
``f(b) = log p(x, b) - log q(b | x)``, the model's parameters getting ``grad log p(x, b)``.

Same convention as ``by_hand.py``: ``floor(encoder, decoder, x) -> float`` fills ``.grad`` of
the parameters with the negative gradient estimate and returns the negative objective,
summed over the data points.
"""

import functools
import math
from collections.abc import Callable

import torch
from torch import nn
from torch.nn.functional import binary_cross_entropy_with_logits, linear, softplus

__all__ = ["Relax", "disarm", "floors", "rebar", "rloo", "vimco"]

LOG_HALF = math.log(0.5)


def _log_bernoulli(value: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """``sum_i v_i l_i - softplus(l_i)`` over the last dim: the Bernoulli log-mass, continued
    to ``v`` in [0, 1] (Tucker et al. 2017, Sec. 3)."""
    return (value * logits - softplus(logits)).sum(-1)


def _log_joint(
    decoder: nn.Linear, b: torch.Tensor, x: torch.Tensor, fixed: bool = False
) -> torch.Tensor:
    """``log p(x, b)`` per data point, the decoder's parameters held fixed if ``fixed``: the
    prior ``Bernoulli(1/2)`` is ``H log 1/2`` at any ``b`` in [0, 1]^H."""
    weight, bias = decoder.weight, decoder.bias
    if fixed:
        weight, bias = weight.detach(), bias.detach()
    logits = linear(b, weight, bias)
    likelihood = binary_cross_entropy_with_logits(logits, x.expand_as(logits), reduction="none")
    return b.size(-1) * LOG_HALF - likelihood.sum(-1)


def _logistic(alpha: torch.Tensor) -> torch.Tensor:
    u = torch.rand_like(alpha).clamp_(1e-7, 1 - 1e-7)
    return u.log() - (-u).log1p()


def _fill(params: list[torch.Tensor], grads: tuple) -> None:
    """``.grad`` of each parameter set to the negative of its estimate."""
    for p, g in zip(params, grads, strict=True):
        p.grad = -g if p.grad is None else p.grad - g


def _backward(log_p: torch.Tensor, guide: torch.Tensor) -> None:
    """The encoder's estimate ``d guide`` (``log p`` does not depend on it at discrete
    values), the decoder's ``d log p(x, b)`` (``guide`` does not depend on it), in one
    backward."""
    (-(guide + log_p).sum()).backward()


def _conditional(alpha: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``z~ ~ p(alpha + L | 1[alpha + L > 0] = b)``, reparameterised in ``alpha``: the inverse
    conditional CDF in log space, ``z~ > 0`` exactly where ``b = 1``."""
    v = torch.rand_like(alpha).clamp_(1e-7, 1 - 1e-7)
    sign = 2 * b - 1
    return sign * (softplus(sign * alpha + v.log()) - (-v).log1p())


def _passes(
    encoder: nn.Linear,
    decoder: nn.Linear,
    x: torch.Tensor,
    temperature: torch.Tensor | float,
    fixed_logits: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """REBAR's and RELAX's passes: ``z = alpha + L``, ``b = 1[z > 0]``, ``z~ ~ p(z | b)``;
    ``(log p(x, b), log q(b | x), s, f(s))`` with ``s = sigmoid([z, z~] / lam)`` stacked on a
    leftmost dim of 2 (one decoder call for both) and ``f(s) = log p(x, s) - log q(s | x)``,
    the log-masses continued there and the decoder held fixed (``alpha`` too inside ``log q``
    if ``fixed_logits``)."""
    alpha = encoder(x)
    z = alpha + _logistic(alpha)
    b = (z > 0).to(alpha.dtype)
    relaxed = torch.stack([z, _conditional(alpha, b)]).div(temperature).sigmoid()
    continued = _log_bernoulli(relaxed, alpha.detach() if fixed_logits else alpha)
    f_relaxed = _log_joint(decoder, relaxed, x, fixed=True) - continued
    return _log_joint(decoder, b, x), _log_bernoulli(b, alpha), relaxed, f_relaxed


def rebar(
    encoder: nn.Linear,
    decoder: nn.Linear,
    x: torch.Tensor,
    eta: float = 1.0,
    temperature: float = 0.5,
    fixed_logits: bool = False,
) -> float:
    """REBAR (Tucker et al. 2017, Eq. 6) with fixed ``eta`` and ``lam``:
    ``g = [f(b) - eta f(s(z~))] d log q(b) + eta d f(s(z)) - eta d f(s(z~))``,
    ``z = alpha + L``, ``b = 1[z > 0]``, ``z~ ~ p(z | b)`` reparameterised, ``s(z) = sigmoid(z /
    lam)``, ``f(s(.))`` with the log-masses continued to the relaxed values and the decoder
    held fixed there.  ``fixed_logits``: ``alpha`` held fixed inside the continued ``log q``
    of the control variate (its only dependence on ``alpha`` is then through ``z`` and ``z~``)."""
    log_p, log_q, _, f_relaxed = _passes(encoder, decoder, x, temperature, fixed_logits)
    c = eta * f_relaxed
    f = (log_p - log_q).detach()
    _backward(log_p, (f - c[1].detach()) * log_q + c[0] - c[1])
    return -f.sum().item()


class Relax:
    """RELAX (Grathwohl et al. 2018, Eq. 5) with the library's default control variate
    ``c_phi(z) = eta f(s(z)) + <w, s(z)>``, ``eta``, ``w`` and ``log lam`` descending the
    gradient of the estimate's second moment ``sum g^2`` over the encoder's parameters
    (second-order autodiff); call it as a floor."""

    def __init__(
        self, latents: int, eta: float = 1.0, temperature: float = 0.5, dtype=torch.float32
    ) -> None:
        self.eta = torch.tensor(eta, dtype=dtype, requires_grad=True)
        self.weight = torch.zeros(latents, dtype=dtype, requires_grad=True)
        self.log_temperature = torch.tensor(math.log(temperature), dtype=dtype).requires_grad_()

    def parameters(self) -> list[torch.Tensor]:
        return [self.eta, self.weight, self.log_temperature]

    def __call__(self, encoder: nn.Linear, decoder: nn.Linear, x: torch.Tensor) -> float:
        temperature = self.log_temperature.exp()
        log_p, log_q, relaxed, f_relaxed = _passes(encoder, decoder, x, temperature)
        c = self.eta * f_relaxed + relaxed @ self.weight
        f = (log_p - log_q).detach()
        # -c(z~) d log q with c(z~) differentiable in phi: the second factor is zero in value
        guide = f * log_q + c[0] - c[1] + c[1] * (log_q.detach() - log_q)
        params = list(encoder.parameters())
        grads = torch.autograd.grad(guide.sum(), params, create_graph=True)
        moment = sum(g.pow(2).sum() for g in grads)
        tuned = torch.autograd.grad(moment, self.parameters(), retain_graph=True)
        model = torch.autograd.grad(log_p.sum(), list(decoder.parameters()))
        _fill(params, [g.detach() for g in grads])
        _fill(list(decoder.parameters()), model)
        _fill(self.parameters(), [-g for g in tuned])
        return -f.sum().item()


def disarm(encoder: nn.Linear, decoder: nn.Linear, x: torch.Tensor) -> float:
    """DisARM (Dong, Mnih & Tucker 2020, Eq. 12): ``b = 1[alpha + L > 0]``,
    ``b~ = 1[alpha - L > 0]`` and ``g_alpha = 1/2 (f(b) - f(b~)) (-1)^b~ 1[b != b~]
    sigmoid(|alpha|)``; the decoder gets the mean of ``d log p`` at ``b`` and ``b~``.  The
    pair in one decoder call."""
    alpha = encoder(x)
    noise = _logistic(alpha)
    pair = (torch.stack([alpha + noise, alpha - noise]) > 0).to(alpha.dtype)
    log_p = _log_joint(decoder, pair, x)
    f = (log_p - _log_bernoulli(pair, alpha)).detach()
    b, anti = pair
    weight = (1 - 2 * anti) * (b != anti) * alpha.detach().abs().sigmoid()
    guide = (((f[0] - f[1]) / 2).unsqueeze(-1) * weight * alpha).sum(-1)
    _backward(log_p.mean(0), guide)
    return -f.mean(0).sum().item()


def _samples(encoder: nn.Linear, decoder: nn.Linear, x: torch.Tensor, k: int) -> tuple:
    """``K`` samples per data point in one encoder and one decoder call: ``(log p, log q)``,
    each ``(K, batch)``."""
    alpha = encoder(x)
    b = (alpha + _logistic(alpha.expand((k, *alpha.shape))) > 0).to(alpha.dtype)
    return _log_joint(decoder, b, x), _log_bernoulli(b, alpha)


def vimco(encoder: nn.Linear, decoder: nn.Linear, x: torch.Tensor, k: int = 5) -> float:
    """VIMCO (Mnih & Rezende 2016, Eqs. 8-10): ``L = log 1/K sum_k w_k`` and
    ``g = sum_k (L - L_-k) d log q(b_k) + sum_k w~_k d log w_k``, ``L_-k`` with ``log w_k``
    replaced by the mean of the others'."""
    log_p, log_q = _samples(encoder, decoder, x, k)
    log_w = log_p - log_q
    lw = log_w.detach()
    bound = lw.logsumexp(0) - math.log(k)
    others = (lw.sum(0, keepdim=True) - lw) / (k - 1)
    eye = torch.eye(k, dtype=torch.bool).unsqueeze(-1)
    swapped = torch.where(eye, others.unsqueeze(1), lw.unsqueeze(0))
    signal = bound - (swapped.logsumexp(1) - math.log(k))
    surrogate = (signal * log_q + lw.softmax(0) * log_w).sum(0)
    (-surrogate.sum()).backward()
    return -bound.sum().item()


def rloo(encoder: nn.Linear, decoder: nn.Linear, x: torch.Tensor, k: int = 5) -> float:
    """RLOO (Kool, van Hoof & Welling 2019): ``g = 1/K sum_k (f_k - mean_{j != k} f_j)
    d log q(b_k)``; the decoder gets ``1/K sum_k d log p(x, b_k)``."""
    log_p, log_q = _samples(encoder, decoder, x, k)
    f = (log_p - log_q).detach()
    signal = f - (f.sum(0, keepdim=True) - f) / (k - 1)
    _backward(log_p.mean(0), (signal * log_q).mean(0))
    return -f.mean(0).sum().item()


def floors(latents: int, k: int) -> dict[str, Callable]:
    """The floors by the name of the library loss each computes (VIMCO's and RLOO's ``K =
    k``), RELAX's with its tuned quantities for ``latents`` units."""
    return {
        "RebarELBO(tune=False)": rebar,
        "RelaxELBO": Relax(latents),
        "DisarmELBO": disarm,
        "VimcoELBO": functools.partial(vimco, k=k),
        "RlooELBO": functools.partial(rloo, k=k),
    }
