"""What the peer scripts share: the sigmoid belief net 200H-784V in plain torch, the timing
of a step, and the exact gradient of a 3-Bernoulli problem for the correctness check.

The peer scripts run in the peers' own environment (``setup.sh``), apart from the project's
(storchastic patches torch globally on import), so this module imports torch alone.  Each
script is run as ``python <script> time IMAGES.npy LATENTS SECONDS`` (prints
``{"name": ms per step}`` as JSON, process CPU time, one intra-op thread) or
``python <script> check DRAWS`` (prints ``{"name": largest |z|}`` of the mean gradient on
:func:`check_problem` against :func:`exact_check_gradient`).

The model: ``b ~ Bernoulli(1/2)^H``, ``x | b ~ Bernoulli(logits = D(b))``; the guide
``b | x ~ Bernoulli(logits = E(x))``, ``D``, ``E`` affine; ``f(b) = log p(x, b) - log q(b | x)``
per image, the Bernoulli log-masses continued to relaxed ``b`` in [0, 1] (Tucker et al.
2017, Sec. 3).  Each step fills the parameters' ``.grad`` with the negative estimate of the
ELBO's gradient and takes an SGD step of size :data:`LR` (the size of ``peers.py``'s).
"""

import itertools
import json
import math
import sys
import time
from collections.abc import Callable

import numpy as np
import torch
from torch import nn
from torch.nn.functional import softplus

#: the SGD step size of every side
LR = 1e-4
TEMPERATURE = 0.5
#: the correctness check: three latent Bernoullis with fixed guide logits, one image
CHECK_LOGITS = (0.3, -0.8, 1.2)


def log_q(logits: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``sum_i b_i l_i - softplus(l_i)`` over the last dim."""
    return (b * logits - softplus(logits)).sum(-1)


def log_joint(decoder: nn.Linear, b: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``log p(x, b)`` per image, ``b`` in [0, 1]."""
    a = decoder(b)
    return (x * a - softplus(a)).sum(-1) - b.shape[-1] * math.log(2.0)


def sbn(latents: int, pixels: int = 784) -> tuple[nn.Linear, nn.Linear]:
    """``(encoder, decoder)``, seeded."""
    torch.manual_seed(0)
    return nn.Linear(pixels, latents), nn.Linear(latents, pixels)


def time_step(step: Callable[[], object], seconds: float) -> float:
    """Milliseconds of process CPU time per call of ``step``, over about ``seconds`` after a
    warm-up."""
    for _ in range(3):
        step()
    calls, start = 0, time.process_time()
    while time.process_time() - start < seconds:
        step()
        calls += 1
    return (time.process_time() - start) / calls * 1e3


def sgd(params: list[torch.Tensor]) -> None:
    with torch.no_grad():
        for p in params:
            if p.grad is not None:
                p -= LR * p.grad
                p.grad = None


def check_problem() -> tuple[torch.Tensor, Callable[[torch.Tensor], torch.Tensor]]:
    """``(logits, f)``: guide logits (a leaf, 3 units) and ``f(b) = sum_i c_i b_i + d b_0 b_1
    - log q(b)`` with fixed ``c``, ``d``, differentiable in ``b`` in [0, 1]."""
    logits = torch.tensor(CHECK_LOGITS, requires_grad=True)
    c, d = torch.tensor([1.0, -2.0, 0.5]), 1.5

    def f(b: torch.Tensor, logits: torch.Tensor = logits) -> torch.Tensor:
        return (b * c).sum(-1) + d * b[..., 0] * b[..., 1] - log_q(logits, b)

    return logits, f


def exact_check_gradient() -> np.ndarray:
    """The exact gradient in the logits of ``E_q[f(b)]`` for :func:`check_problem`, by
    enumeration in float64: ``sum_b q(b) f(b) (b - theta)``, the score of ``log q`` having
    mean zero."""
    logits = np.array(CHECK_LOGITS, np.float64)
    theta = 1 / (1 + np.exp(-logits))
    c, d = np.array([1.0, -2.0, 0.5]), 1.5
    grad = np.zeros(3)
    for b in itertools.product((0.0, 1.0), repeat=3):
        b = np.array(b)
        log_mass = (b * np.log(theta) + (1 - b) * np.log1p(-theta)).sum()
        f = (b * c).sum() + d * b[0] * b[1] - log_mass
        grad += np.exp(log_mass) * f * (b - theta)
    return grad


def largest_z(draws: np.ndarray) -> float:
    """The largest ``|z|`` of the mean of ``draws`` (one gradient per row) against
    :func:`exact_check_gradient`."""
    se = draws.std(0, ddof=1) / np.sqrt(len(draws))
    return float(np.abs((draws.mean(0) - exact_check_gradient()) / se).max())


def main(steps: Callable, gradients: Callable) -> None:
    """The command line of a peer script: ``steps(encoder, decoder, x)`` returns the
    ``{name: step}`` to time, ``gradients(name_draws)`` the ``{name: (draws, 3)}`` for the
    check."""
    torch.set_num_threads(1)
    torch.distributions.Distribution.set_default_validate_args(False)
    if sys.argv[1] == "time":
        x = torch.from_numpy(np.load(sys.argv[2]))
        encoder, decoder = sbn(int(sys.argv[3]), x.shape[1])
        seconds = float(sys.argv[4])
        out = {name: time_step(step, seconds) for name, step in steps(encoder, decoder, x).items()}
    else:
        torch.manual_seed(0)  # the noise and any network a method initialises
        out = {name: largest_z(d) for name, d in gradients(int(sys.argv[2])).items()}
    print(json.dumps(out))
