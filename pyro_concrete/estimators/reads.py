"""Whether model and guide read the relaxed values of the discrete sites differentiably.

REBAR's and RELAX's control variate evaluates the model at relaxed values ``sigma_lam(z)``
of the discrete sites and differentiates it along ``z``.  A program that reads a value
through a step function (``z.argmax(-1)`` to index a table, ``torch.where(z > 0.5, ...)``,
``z.round()``) computes ``f(b)`` at the relaxed point, whose derivative along ``z`` is
zero: the pathwise terms of the estimator vanish and its gradient is biased, silently.

The check runs model and guide once at the relaxed point under a
:class:`~torch.overrides.TorchFunctionMode` that labels every tensor with the sites whose
relaxed values it was computed from.  A site read by another site's log density
(``f``'s terms, the guide's included) must reach it through autograd, and not through a
rounding function alone (whose derivative is zero); otherwise
:func:`check_differentiable_reads` raises ``ValueError``.  What it cannot see: a read
that leaves torch (``float(z)``, Python control flow on ``z > 0.5``) and a program that
reads a value both ways (a step and a differentiable read of the same site), where the
derivative is that of the differentiable read only.
"""

from collections.abc import Callable, Iterable

import torch
from pyro import poutine
from pyro.poutine.messenger import Messenger
from pyro.poutine.util import site_is_subsample
from torch.overrides import TorchFunctionMode

from ..distributions.wrappers import base_of
from .traces import DiscreteSampler

__all__ = ["check_differentiable_reads", "check_independent", "logits_sources"]


def _tensors(tree) -> Iterable[torch.Tensor]:
    """The tensors of a nest of tuples, lists and dicts (a function's arguments)."""
    if isinstance(tree, torch.Tensor):
        yield tree
    elif isinstance(tree, list | tuple):
        for item in tree:
            yield from _tensors(item)
    elif isinstance(tree, dict):
        for item in tree.values():
            yield from _tensors(item)


#: functions whose derivative is zero wherever it exists (torch's and the Tensor methods)
_ROUNDING = {"round", "floor", "ceil", "trunc", "fix", "sign", "sgn"}


class _Sources(TorchFunctionMode):
    """Labels every tensor that a torch function computes with the union of its inputs'
    labels: the sites whose relaxed values it was computed from; :attr:`rounded` the sites
    whose values went through a rounding function."""

    def __init__(self) -> None:
        super().__init__()
        # by id, holding the tensor so that the id is not reused during the pass
        self._labels: dict[int, tuple[torch.Tensor, frozenset[str]]] = {}
        self.rounded: set[str] = set()

    def of(self, tensor: torch.Tensor) -> frozenset[str]:
        return self._labels.get(id(tensor), (None, frozenset()))[1]

    def label(self, tensor: torch.Tensor, names: frozenset[str]) -> None:
        self._labels[id(tensor)] = (tensor, self.of(tensor) | names)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        names = frozenset().union(*(self.of(t) for t in _tensors((args, kwargs))))
        if names and getattr(func, "__name__", "").rstrip("_") in _ROUNDING:
            self.rounded |= names
        if names:
            for tensor in _tensors(out):
                self.label(tensor, names)
        return out


class _LabelSites(Messenger):
    """Labels the value of each site in ``names`` (a dict filled as the pass goes) with its
    own name, once it is set."""

    def __init__(self, sources: _Sources, names: dict) -> None:
        super().__init__()
        self.sources, self.names = sources, names

    def _pyro_post_sample(self, msg: dict) -> None:
        if msg["name"] in self.names and isinstance(msg["value"], torch.Tensor):
            self.sources.label(msg["value"], frozenset({msg["name"]}))


def check_differentiable_reads(
    relaxed_pass: Callable[[Callable], tuple[poutine.Trace, poutine.Trace]],
    values: dict[str, torch.Tensor],
    estimator: str,
) -> None:
    """Raise ``ValueError`` naming a discrete site whose relaxed value some log density
    reads without a derivative.

    :param relaxed_pass: runs a relaxed pass of model and guide, each wrapped by the
        handler it is given, and returns ``(model_trace, guide_trace)`` with log densities
        computed; ``values`` are then the relaxed values of its sites.
    :param values: the relaxed values by site, filled by the pass.
    :param estimator: the calling estimator's name, for the message.
    """
    sources = _Sources()
    with sources:
        traces = relaxed_pass(_LabelSites(sources, values))
    terms = [
        (name, site["log_prob_sum"])
        for trace in traces
        for name, site in trace.nodes.items()
        if site["type"] == "sample" and not site_is_subsample(site)
    ]
    for name, value in values.items():
        readers = [term for other, term in terms if other != name and name in sources.of(term)]
        if not readers:
            continue
        downstream = sum(readers[1:], readers[0])
        grad = None
        if downstream.requires_grad:
            (grad,) = torch.autograd.grad(downstream, value, retain_graph=True, allow_unused=True)
        # not connected (an index, a comparison), or connected through a rounding only: a
        # derivative of zero from weights that are zero would not mean a step
        if grad is None or (name in sources.rounded and not grad.any()):
            raise ValueError(_step_message(estimator, name))


def logits_sources(
    guide_pass: Callable[[Callable], poutine.Trace], sites: dict
) -> dict[str, frozenset[str]]:
    """For each discrete site of a guide, the other discrete sites whose values its logits
    are computed from (a guide whose sites are independent given the data has none).

    :param guide_pass: runs the guide wrapped by the handler it is given, returning its
        trace; ``sites`` is then filled with its discrete sites by name.
    :param sites: the discrete sites by name, filled by the pass.
    """
    sources = _Sources()
    with sources:
        trace = guide_pass(_LabelSites(sources, sites))
    return {name: sources.of(base_of(trace.nodes[name]["fn"]).logits) - {name} for name in sites}


def check_independent(
    guide: Callable, args: tuple, kwargs: dict, estimator: str, alternatives: str
) -> None:
    """``ValueError`` if the logits of a discrete site of ``guide`` are computed from the
    value of another (an estimator that needs the sites independent given the data): the
    guide run once under the labels of :func:`logits_sources` (on the first step of each
    model and guide), so that no draw can hide the dependence.

    :param estimator: the calling estimator's name, for the message.
    :param alternatives: the estimators that take such a guide, for the message.
    """
    sampler = DiscreteSampler(estimator=estimator)
    run = lambda handler: poutine.trace(sampler(handler(guide))).get_trace(*args, **kwargs)  # noqa: E731
    for name, sources in logits_sources(run, sampler.sites).items():
        if sources:
            raise ValueError(
                f"{estimator}: the logits of guide site {name!r} depend on the value of "
                "another discrete site (the guide computes them from it). "
                f"{estimator} needs the guide's discrete sites independent given the data; "
                f"use {alternatives} for a hierarchical guide."
            )


def _step_message(estimator: str, name: str) -> str:
    return (
        f"{estimator}: the value of discrete site {name!r} is read through a step function "
        "(argmax, a comparison, round, ...): at a real-valued point the model computes "
        "f(b) itself, with a derivative of zero, and the estimator's terms built from that "
        "derivative vanish (REBAR's and RELAX's pathwise terms: their gradient is biased). "
        "Read the value with arithmetic "
        "(pyro_concrete.select(table, z) for a categorical, z * a + (1 - z) * b for a "
        "Bernoulli), or use DisarmELBO or VimcoELBO, which evaluate the model at discrete "
        "values only."
    )
