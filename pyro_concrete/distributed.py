"""Data-parallel relaxed SVI on PyTorch Lightning's DDP strategy.

Training follows Pyro's own Lightning idiom: the ELBO bound to a model and a guide is a
``torch.nn.Module`` (``Trace_ELBO()(model, guide)``, or any ``pyro.infer.ELBO``
subclass's), :class:`LightningSVI` steps it with a torch optimiser, and
``pl.Trainer(strategy="ddp", devices=N)`` runs ``N`` processes, each on its own shard of
every batch (Lightning's ``DistributedSampler``), with DDP averaging the gradients.

Why ``N`` ranks of batch ``B`` take the steps of one process of batch ``N B``: the
gradient of the loss is an average over ranks, so each rank's loss must estimate the same
quantity whatever its batch size: the whole data set's negative ELBO.  A plate with its
full size (``pyro.plate("data", len(dataset), subsample=idx)``) scales by
``len(dataset) / B`` itself; a model whose plate has the batch's size is scaled by
``LightningSVI(..., num_data=len(dataset))``.  The noise (Gumbel, logistic) is drawn
from torch's global generator, seeded on each rank with :func:`rank_seed`, so the ranks'
draws are independent and every run is reproducible from one seed.

Local parameters (``AutoRelaxed``'s ``log_alpha``, one per data point): every rank holds
all of them, DDP averages their gradients like any other, so they stay identical on every
rank.  They must be indexed by the data points' positions in the data set, because each
rank's batch holds different points: the model's plate ``pyro.plate("data",
len(dataset), subsample=idx)`` with ``idx`` from the batch, and the same plate given to the
guide (``AutoRelaxed(model, create_plates=...)``).  :class:`LightningSVI` refuses, with a
``ValueError`` at the first step, a guide with a parameter per element of a plate of the
batch's size, unless one process trains on one unshuffled batch per epoch (on several
ranks, with a shuffled loader or several batches, element ``i`` is another point at each
step), or of a subsampled plate whose indices it draws itself.
Amortised guides (an encoder network) have no local parameters.

The estimators of the discrete objective train the same way, with their own gradients:
``RebarELBO()(model, guide)``'s ``differentiable_loss`` gives every parameter what
``SVI``'s ``loss_and_grads`` gives it, and the module holds the quantities the estimator
tunes (REBAR's ``eta`` and temperatures, RELAX's default control variate) as parameters,
so DDP averages their gradients, of the estimate's second moment, like any other.

:func:`sharded_discrete_bound` evaluates the discrete model's bound on a data set split
over the ranks: each rank's shard, then one ``all_reduce`` sum.
"""

from collections.abc import Callable

import lightning.pytorch as pl
import numpy as np
import pyro
import torch
from pyro import poutine
from pyro.infer.autoguide import AutoGuide
from pyro.infer.elbo import ELBOModule
from pyro.poutine.util import site_is_subsample
from torch import distributed, nn
from torch.utils.data import SequentialSampler

from .infer import discrete_bound, discretize

__all__ = ["LightningSVI", "rank_seed", "sharded_discrete_bound"]


def rank_seed(seed: int, rank: int) -> int:
    """The seed of process ``rank``: the first word of ``numpy.random.SeedSequence(seed)``'s
    child ``rank``, so the ranks' streams are independent and all follow from ``seed``."""
    for name, value in (("seed", seed), ("rank", rank)):
        if not (isinstance(value, int | np.integer) and value >= 0):
            raise ValueError(f"rank_seed: {name} must be an integer >= 0, got {value!r}.")
    return int(np.random.SeedSequence(seed, spawn_key=(rank,)).generate_state(1)[0])


def _unowned_param(module: nn.Module) -> str | None:
    """The name of a parameter of Pyro's param store that ``module`` does not hold."""
    owned = {id(p) for p in module.parameters()}
    for name, param in pyro.get_param_store().named_parameters():
        if id(param) not in owned:
            return name
    return None


def _check_initialised(loss_fn: ELBOModule, module: nn.Module) -> None:
    name = _unowned_param(module)
    if name is not None:
        raise ValueError(
            f"LightningSVI: parameter {name!r} is in Pyro's param store but not in the "
            "modules it trains, so DDP would not average its gradient. Pass the module that "
            "owns it: LightningSVI(loss_fn, module, ...), making a bare pyro.param (of a "
            "RelaxELBO control variate, say) a PyroParam of a PyroModule; or clear the param "
            "store (pyro.clear_param_store()) before building the model."
        )
    guide = loss_fn.guide
    unbuilt = isinstance(guide, AutoGuide) and guide.prototype_trace is None
    if unbuilt or next(module.parameters(), None) is None:
        raise ValueError(
            "LightningSVI: the model and guide have no parameters yet. Call loss_fn(*batch) "
            "once before trainer.fit, so that every rank creates them before DDP averages "
            "their gradients."
        )


def _check_no_new_parameters(plan: "LightningSVI") -> None:
    """Refuse a parameter created after the optimiser (and DDP) took the module's
    parameters: neither would train it (a site, or an estimator's tuned quantity, first
    reached during training)."""
    new = [name for name, p in plan.named_parameters() if id(p) not in plan._trained_ids]
    name = new[0] if new else _unowned_param(plan)
    if name is not None:
        raise ValueError(
            f"LightningSVI: parameter {name!r} was created during training, after the "
            "optimiser and DDP took the parameters, so it would not be trained. Call "
            "loss_fn(*batch) before trainer.fit on a batch that reaches every sample site."
        )


def _same_points_every_step(trainer: pl.Trainer) -> bool:
    """Whether every step's batch holds the same data points in the same slots: one
    process whose loader yields one batch per epoch, in the data set's order."""
    sampler = getattr(trainer.train_dataloader, "sampler", None)
    return (
        trainer.world_size == 1
        and trainer.num_training_batches == 1
        and isinstance(sampler, SequentialSampler)
    )


def _check_local_parameters(guide: Callable, batch_size: int, same_points: bool) -> None:
    """Refuse an autoguide whose parameters along a plate do not follow the batch's data
    points: a subsampled plate whose indices the guide draws itself (no ``create_plates``),
    or a plate of the batch's size unless every step's batch holds the same points in the
    same slots (``same_points``: one process, one unshuffled batch per epoch).  Element
    ``i`` of such a plate is whatever point slot ``i`` of the batch holds: with a shuffled
    loader, several batches per epoch or several ranks, its parameter meets a new point
    at every step, and DDP averages the parameters of different points."""
    if not isinstance(guide, AutoGuide):
        return
    for name, site in guide.prototype_trace.iter_stochastic_nodes():
        for frame in site["cond_indep_stack"]:
            if not frame.vectorized:
                continue
            if frame.size < frame.full_size and guide.create_plates is None:
                raise ValueError(
                    f"LightningSVI: the guide's site {name!r} has a parameter per element of "
                    f"the subsampled plate {frame.name!r}, but the guide draws its own "
                    "subsample instead of the batch's points. Give the guide the model's "
                    f"plate: create_plates=lambda idx, *args: pyro.plate({frame.name!r}, "
                    "len(dataset), subsample=idx)."
                )
            if frame.size == frame.full_size == batch_size and not same_points:
                raise ValueError(
                    f"LightningSVI: the guide's site {name!r} has a parameter per element of "
                    f"plate {frame.name!r} (size {frame.size}, the batch size), which is not "
                    "subsampled: element i is whatever data point slot i of the batch holds, "
                    "which changes from step to step (a shuffled loader, several batches per "
                    "epoch) and from rank to rank, so its parameter would meet a new point at "
                    "every step (and DDP would average the parameters of different points). "
                    "Index the plate by the points' positions in the data set, "
                    f"pyro.plate({frame.name!r}, len(dataset), subsample=idx) with idx from "
                    "the batch (and the same plate as the guide's create_plates), or use an "
                    "amortised guide (an encoder network), or train on one process with the "
                    "whole data set as one unshuffled batch."
                )


class LightningSVI(pl.LightningModule):
    """Stochastic variational inference as a ``LightningModule``: each training step
    returns ``loss_fn(*batch)``, the ELBO's differentiable loss, and Adam steps every
    parameter of ``loss_fn`` and ``modules``.

    Usage (``N`` processes on one machine)::

        loss_fn = Trace_ELBO()(relax(net.model, 0.5), relax(net.guide, 2 / 3))
        loss_fn(next(iter(loader))[0])  # create the parameters on every rank
        plan = LightningSVI(loss_fn, net, lr=1e-3, seed=0, num_data=len(data))
        pl.Trainer(strategy="ddp", accelerator="cpu", devices=N, max_steps=S).fit(plan, loader)

    :param loss_fn: an ELBO bound to a model and a guide: ``Trace_ELBO()(model, guide)``
        or the module of any other ``pyro.infer.ELBO`` subclass, an estimator's included
        (``RebarELBO()(model, guide)`` holds the quantities it tunes).
    :param modules: modules whose parameters the model or guide use but ``loss_fn`` does
        not hold, e.g. the network behind ``relax(net.model)`` (a function, not a module).
    :param lr: Adam's learning rate.
    :param seed: the run's seed; rank ``r`` seeds Pyro with ``rank_seed(seed, r)``.
    :param num_data: the data set's size when the model's plate has the batch's size: each
        step's loss is scaled by ``num_data / len(batch)``, the whole data set's estimate.
        ``None`` when the model scales itself (a subsampled plate).
    """

    def __init__(
        self,
        loss_fn: ELBOModule,
        *modules: nn.Module,
        lr: float = 1e-3,
        seed: int = 0,
        num_data: int | None = None,
    ) -> None:
        super().__init__()
        if num_data is not None and not num_data > 0:
            raise ValueError(f"LightningSVI: num_data must be > 0 or None, got {num_data!r}.")
        rank_seed(seed, 0)  # validates the seed
        if not callable(getattr(loss_fn.elbo, "differentiable_loss", None)):
            raise ValueError(
                f"LightningSVI: {type(loss_fn.elbo).__name__} has no differentiable_loss, the "
                "surrogate loss whose gradient a torch optimiser (and DDP) steps with. Use an "
                "ELBO that defines it (Trace_ELBO, TraceMeanField_ELBO, TraceEnum_ELBO, ...)."
            )
        self.loss_fn = loss_fn
        self.modules_trained = nn.ModuleList(modules)
        self.lr = lr
        self.seed = seed
        self.num_data = num_data
        #: the loss of every step on this rank
        self.losses: list[float] = []

    def setup(self, stage: str) -> None:
        _check_initialised(self.loss_fn, self)
        pyro.set_rng_seed(rank_seed(self.seed, self.global_rank))

    def training_step(self, batch: list[torch.Tensor], batch_idx: int) -> torch.Tensor:
        if self.global_step == 0:
            same_points = _same_points_every_step(self.trainer)
            _check_local_parameters(self.loss_fn.guide, len(batch[0]), same_points)
        scale = 1.0 if self.num_data is None else self.num_data / len(batch[0])
        with poutine.scale(scale=scale):
            loss = self.loss_fn(*batch)
        _check_no_new_parameters(self)
        self.losses.append(loss.item())
        self.log("loss", loss)
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        self._trained_ids = {id(p) for p in self.parameters()}
        return torch.optim.Adam(self.parameters(), lr=self.lr)


@torch.no_grad()
def _check_local_sites(model: Callable, guide: Callable, *args, **kwargs) -> None:
    """Raise unless one plate encloses every sample site of the guide and the model."""
    guide_trace = poutine.trace(discretize(guide)).get_trace(*args, **kwargs)
    model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(*args, **kwargs)
    plates = [
        {frame.name for frame in site["cond_indep_stack"] if frame.vectorized}
        for trace in (guide_trace, model_trace)
        for site in trace.nodes.values()
        if site["type"] == "sample" and not site_is_subsample(site)
    ]
    if plates and set.intersection(*plates):
        return
    raise ValueError(
        "sharded_discrete_bound: the bound is a sum over shards only when every sample site "
        "lies in one plate (a data plate with local latent variables); this model has a "
        "site outside every common plate (a global variable). Fix the global variables and "
        "leave them out of the bound, poutine.block(poutine.condition(model, data={...}), "
        "hide=[...]), or evaluate on one process with discrete_bound."
    )


def sharded_discrete_bound(
    model: Callable,
    guide: Callable,
    *args,
    num_samples: int = 1,
    batch_size: int | None = None,
    **kwargs,
) -> float:
    """:func:`~pyro_concrete.discrete_bound` of a data set split over the processes of
    ``torch.distributed``: each rank passes its own shard as ``args``; the per-point
    bounds of every shard are summed, with one ``all_reduce``, so every rank returns the
    bound of the whole data set (on one process, the shard's bound).

    The per-point bound is the bound of a data point's own ``p(x_i, z_i)``, so the sum
    over shards equals the one-process value; this needs every sample site to lie in one
    plate (local latent variables), else a ``ValueError`` (on one process too, so that
    code which runs on one process runs on many).

    :param model: the discrete model, as for ``discrete_bound``.
    :param guide: the trained relaxed guide.
    :param num_samples: K, particles per data point.
    :param batch_size: particles per vectorised pass.
    :return: the bound of the whole data set (nats).
    """
    _check_local_sites(model, guide, *args, **kwargs)
    bound = discrete_bound(
        model, guide, *args, num_samples=num_samples, batch_size=batch_size, **kwargs
    )
    if not (distributed.is_available() and distributed.is_initialized()):
        return bound
    total = torch.tensor(bound, dtype=torch.float64)
    distributed.all_reduce(total)
    return total.item()
