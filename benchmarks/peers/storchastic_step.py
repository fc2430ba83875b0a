"""storchastic 0.3.7's REBAR and RELAX (``storch.method.REBAR`` / ``RELAX``) on the sigmoid
belief net, timed per step, and their mean gradient checked on a 3-Bernoulli problem.

    python storchastic_step.py time IMAGES.npy LATENTS SECONDS | check DRAWS

Each step is storchastic's recipe: the batch as an independent plate
(``storch.denote_independent``), the guide's ``Bernoulli(logits)`` sampled by the method,
the negative ``f`` per image registered with ``storch.add_cost`` and ``storch.backward()``,
which also moves the method's own quantities (both methods tune their temperature, start
here at 0.5, and ``eta``; RELAX's ``c_phi`` is its default network of the relaxed sample).
Imported only in its own process: storchastic patches torch on import.
"""

import numpy as np
import sbn
import storch
import torch
from storch.method import REBAR, RELAX
from torch import nn
from torch.distributions import Bernoulli


def methods(latents: int) -> dict[str, storch.method.Method]:
    out = {"REBAR": REBAR("z"), "RELAX": RELAX("z", in_dim=latents)}
    for method in out.values():
        with torch.no_grad():
            method.temperature.fill_(sbn.TEMPERATURE)
    return out


def negative_elbo(method, logits, log_joint) -> None:
    """Sample ``b`` with ``method`` and register ``-f(b)`` per image as the cost."""
    q = Bernoulli(logits=logits)
    b = method(q)
    storch.add_cost(-(log_joint(b) - q.log_prob(b).sum(-1)), "negative_elbo")


def steps(encoder: nn.Linear, decoder: nn.Linear, x: torch.Tensor) -> dict:
    def step(method) -> None:
        xs = storch.denote_independent(x, 0, "data")
        negative_elbo(method, encoder(xs), lambda b: sbn.log_joint(decoder, b, xs))
        storch.backward()
        sbn.sgd([*encoder.parameters(), *decoder.parameters(), *method.parameters()])

    return {name: (lambda m=m: step(m)) for name, m in methods(encoder.out_features).items()}


def gradients(draws: int) -> dict[str, np.ndarray]:
    """One draw per element of an independent plate of ``draws`` copies of the logits."""
    logits, f = sbn.check_problem()
    out = {}
    for name, method in methods(3).items():
        rows = logits.detach().expand(draws, 3).clone().requires_grad_()
        batch = storch.denote_independent(rows, 0, "data")
        q = Bernoulli(logits=batch)
        b = method(q)
        storch.add_cost(-f(b, batch), "negative_f")
        storch.backward()
        # the cost is averaged over the plate: each row's gradient is 1 / draws of its estimate
        out[name] = -draws * rows.grad.detach().double().numpy()
    return out


if __name__ == "__main__":
    sbn.main(steps, gradients)
