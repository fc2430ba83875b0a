"""The innermost distribution of a site's, under the wrappers Pyro puts around it
(``Independent`` from ``to_event``, ``ExpandedDistribution`` from ``expand`` and plates,
``MaskedDistribution`` from ``mask``): what the relaxation and the estimators read and
replace."""

from collections.abc import Callable

import pyro.distributions as dist
import torch

__all__ = ["base_of", "map_base"]


def map_base(
    fn: dist.TorchDistribution, f: Callable[[dist.TorchDistribution], dist.TorchDistribution]
) -> dist.TorchDistribution:
    """Apply ``f`` to the innermost distribution of ``fn``, keeping the ``Independent``,
    ``ExpandedDistribution`` and ``MaskedDistribution`` wrappers around it."""
    if isinstance(fn, torch.distributions.Independent):
        return map_base(fn.base_dist, f).to_event(fn.reinterpreted_batch_ndims)
    if isinstance(fn, dist.ExpandedDistribution):
        return map_base(fn.base_dist, f).expand(fn.batch_shape)
    if isinstance(fn, dist.MaskedDistribution):
        # the mask has no public accessor (Pyro and NumPyro keep it as ``_mask``)
        return map_base(fn.base_dist, f).mask(fn._mask)
    return f(fn)


def base_of(fn: dist.TorchDistribution) -> dist.TorchDistribution:
    """The innermost distribution of ``fn``, under the wrappers that ``map_base`` keeps."""
    while isinstance(
        fn, torch.distributions.Independent | dist.ExpandedDistribution | dist.MaskedDistribution
    ):
        fn = fn.base_dist
    return fn
