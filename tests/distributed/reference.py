"""The float64 reference that both backends' sharded bounds are checked against."""

from collections.abc import Sequence

import numpy as np
from scipy.special import logsumexp
from scipy.stats import norm


def mixture_log_likelihood(x: np.ndarray, locs: Sequence[float]) -> float:
    """``sum_i log (1/K) sum_k N(x_i; locs_k, 1)``: the Gaussian mixture's log-likelihood
    at fixed locations, in float64."""
    log_lik = norm.logpdf(np.asarray(x, np.float64)[:, None], np.asarray(locs, np.float64))
    return float((logsumexp(log_lik, 1) - np.log(len(locs))).sum())
