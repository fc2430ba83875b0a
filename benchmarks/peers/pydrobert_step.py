"""pydrobert-pytorch's REBAR and RELAX (``pydrobert.torch.estimators.relax``) on the sigmoid
belief net, timed per step, and their mean gradient checked on a 3-Bernoulli problem.

    python pydrobert_step.py time IMAGES.npy LATENTS SECONDS | check DRAWS

``relax(fb, b, logits, z, c, "bern")`` returns the estimate for the logits; it differentiates
``c`` through ``z`` and ``z~`` only (it detaches the logits), so ``f``'s own dependence on the
logits, ``-log q``, is held fixed inside ``c`` (unbiased all the same: that part of
``grad c(z)`` and of ``grad c(z~)`` has the same mean), and the score of ``-log q`` at ``b``
(mean zero) is left out.  The encoder gets the estimate through the logits, the decoder
``grad log p(x, b)``.  REBAR: ``c = REBARControlVariate(f)`` at ``eta = 1``, ``lam = 0.5``,
not tuned.  RELAX: that control variate plus ``<w, sigmoid(z / lam)>``, its ``eta``,
``log lam`` and ``w`` descending ``sum g^2`` over the logits (the recipe of pydrobert's
docs).
"""

import numpy as np
import sbn
import torch
from pydrobert.torch.estimators import REBARControlVariate, relax, to_b, to_z
from torch import nn


class LinearRelax(nn.Module):
    """``c(z) = eta f(sigmoid(z / lam)) + <w, sigmoid(z / lam)>``."""

    def __init__(self, f, latents: int) -> None:
        super().__init__()
        self.rebar = REBARControlVariate(f, "bern", start_temp=sbn.TEMPERATURE)
        self.weight = nn.Parameter(torch.zeros(latents))

    def forward(self, z: torch.Tensor, **kwargs) -> torch.Tensor:
        relaxed = torch.sigmoid(z / self.rebar.log_temp.exp())
        return self.rebar(z, **kwargs) + (relaxed @ self.weight).unsqueeze(-1)


def control_variates(f, latents: int) -> dict[str, nn.Module]:
    """REBAR's (not tuned) and RELAX's control variates of ``f(b, held) -> (n, 1)``."""
    rebar = REBARControlVariate(f, "bern", start_temp=sbn.TEMPERATURE)
    rebar.requires_grad_(False)
    return {"REBAR": rebar, "RELAX": LinearRelax(f, latents)}


def estimate(logits: torch.Tensor, f, c: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """``(g, b)``: pydrobert's estimate of ``d E_q[f] / d logits`` per row, and the sample;
    ``f(b, held)`` with ``held`` the logits detached."""
    held = logits.detach()
    z = to_z(logits, "bern")
    b = to_b(z, "bern")
    return relax(f(b, held).detach(), b, logits, z, c, "bern", held=held), b


def tune(c: nn.Module, g: torch.Tensor) -> None:
    """Fill ``.grad`` of ``c``'s parameters with the gradient of ``sum g^2``."""
    params = [p for p in c.parameters() if p.requires_grad]
    if params:
        grads = torch.autograd.grad((g**2).sum(), params)
        for p, grad in zip(params, grads, strict=True):
            p.grad = grad


def steps(encoder: nn.Linear, decoder: nn.Linear, x: torch.Tensor) -> dict:
    def f(b: torch.Tensor, held: torch.Tensor) -> torch.Tensor:
        return (sbn.log_joint(decoder, b, x) - sbn.log_q(held, b)).unsqueeze(-1)

    def step(c: nn.Module) -> None:
        logits = encoder(x)
        g, b = estimate(logits, f, c)
        tune(c, g)
        logits.backward(-g.detach())
        (-sbn.log_joint(decoder, b, x).sum()).backward()
        sbn.sgd([*encoder.parameters(), *decoder.parameters(), *c.parameters()])

    cvs = control_variates(f, encoder.out_features)
    return {name: (lambda c=c: step(c)) for name, c in cvs.items()}


def gradients(draws: int) -> dict[str, np.ndarray]:
    """One draw per row: the logits repeated ``draws`` times, each row its own estimate.
    RELAX's ``w`` and ``eta`` are set away from their start (unbiased for any)."""
    logits, f = sbn.check_problem()

    def f_rows(b: torch.Tensor, held: torch.Tensor) -> torch.Tensor:
        return f(b, held).unsqueeze(-1)

    out = {}
    for name, c in control_variates(f_rows, 3).items():
        if name == "RELAX":
            with torch.no_grad():
                c.weight.copy_(torch.tensor([0.5, -1.0, 0.3]))
                c.rebar.eta.fill_(0.7)
        rows = logits.detach().expand(draws, 3).clone().requires_grad_()
        g, b = estimate(rows, f_rows, c)
        # plus the score of -log q at b, -(b - theta): the whole gradient of E_q[f]
        out[name] = (g.detach() - (b - torch.sigmoid(rows.detach()))).double().numpy()
    return out


if __name__ == "__main__":
    sbn.main(steps, gradients)
