"""Independent float64 reference densities of the Concrete family.

Written from the formulas of Maddison, Mnih & Teh (2017; Eq. 11, App. B, App. C.3) and
Louizos, Welling & Kingma (2018), in numpy/scipy only: nothing here imports the code
under test.  Every function broadcasts ``logits`` (last axis: categories, for the
categorical family) against ``temperature`` (batch shape) and the value.

Base measures, the contract of the packages:

- ``Concrete``: Lebesgue measure on ``(x_1, ..., x_{n-1})``.
- ``ExpConcrete``: Lebesgue measure on ``(y_1, ..., y_{n-1})``, ``y = log x``; this is the
  paper's Eq. 26 minus ``y_n`` (Eq. 26 is not normalised there).
- ``BinaryConcrete``: Lebesgue on (0, 1); ``LogitBinaryConcrete``: Lebesgue on R.
- ``HardConcrete``: Lebesgue on (0, 1) plus unit point masses at 0 and 1.
"""

import itertools

import numpy as np
from scipy.special import expit, gammaln, log_expit, log_softmax, logsumexp, softmax

__all__ = [
    "binary_concrete_boundary_log_density",
    "binary_concrete_log_density",
    "binary_concrete_log_density_at_logit",
    "chart_log_jacobians_by_matrix",
    "concrete_boundary_log_density",
    "concrete_chart_log_jacobian",
    "concrete_log_density",
    "concrete_log_density_at_log",
    "exp_concrete_chart_log_jacobian",
    "exp_concrete_log_density",
    "exp_concrete_paper_log_density",
    "expit",
    "hard_concrete_log_p0",
    "hard_concrete_log_p1",
    "hard_concrete_log_prob",
    "hmm_posterior",
    "log_simplex_from_chart",
    "logistic_entropy",
    "logit_binary_concrete_log_density",
    "mixture_map_locations",
    "mixture_posterior",
    "softmax",
    "subset_regression_log_joint",
    "two_class_discrete_elbo",
]


def _softplus(z):
    return np.logaddexp(0.0, z)


def _f64(*arrays):
    return [np.asarray(a, dtype=np.float64) for a in arrays]


# --- categorical family -------------------------------------------------------------


def exp_concrete_paper_log_density(y, logits, temperature):
    """The paper's App. C.3 Eq. 26 at ``y = log x`` (not normalised in any chart):

    ``log Gamma(n) + (n-1) log lam + sum_k (a_k - lam y_k) - n logsumexp_k(a_k - lam y_k)``.
    """
    y, logits, lam = _f64(y, logits, temperature)
    n = logits.shape[-1]
    lam_k = lam[..., None]
    scores = logits - lam_k * y
    return gammaln(n) + (n - 1) * np.log(lam) + scores.sum(-1) - n * logsumexp(scores, axis=-1)


def exp_concrete_log_density(y, logits, temperature):
    """ExpConcrete density w.r.t. Lebesgue on ``(y_1, ..., y_{n-1})``: Eq. 26 minus ``y_n``.

    Change of variables from Eq. 11: ``x_k = exp(y_k)`` for ``k < n`` has Jacobian
    ``prod_{k<n} x_k``, and Eq. 11 times that is Eq. 26 divided by ``x_n``.
    """
    y = np.asarray(y, dtype=np.float64)
    return exp_concrete_paper_log_density(y, logits, temperature) - y[..., -1]


def concrete_log_density_at_log(y, logits, temperature):
    """Concrete (Eq. 11) w.r.t. Lebesgue on ``(x_1, ..., x_{n-1})``, at ``x = exp(y)``:

    ``log Gamma(n) + (n-1) log lam + sum_k (a_k - (lam+1) y_k)
    - n logsumexp_k(a_k - lam y_k)``.
    """
    y, logits, lam = _f64(y, logits, temperature)
    n = logits.shape[-1]
    lam_k = lam[..., None]
    return (
        gammaln(n)
        + (n - 1) * np.log(lam)
        + (logits - (lam_k + 1) * y).sum(-1)
        - n * logsumexp(logits - lam_k * y, axis=-1)
    )


def concrete_log_density(x, logits, temperature):
    """Eq. 11 at a point ``x`` of the open simplex (all coordinates > 0)."""
    x = np.asarray(x, dtype=np.float64)
    return concrete_log_density_at_log(np.log(x), logits, temperature)


def concrete_boundary_log_density(x, logits, temperature):
    """The limit of Eq. 11 at a point of the closed simplex with ``m >= 1`` zero coordinates.

    Along ``x_J = eps -> 0`` (``J`` the zero coordinates), ``prod_k x_k^(-lam-1)`` grows as
    ``eps^(-(lam+1) m)`` and ``(sum_k a_k x_k^-lam)^n`` as ``eps^(-lam n) (sum_J a_k)^n``, so
    the density behaves as ``eps^e exp(K)`` with ``e = (n - m) lam - m`` and
    ``K = log Gamma(n) + (n-1) log lam + sum_k a_k - (lam+1) sum_{k not in J} log x_k
    - n logsumexp_{k in J} a_k``.  The limit is ``+inf`` (e < 0), ``-inf`` (e > 0), ``K`` (e = 0).
    """
    x, logits, lam = _f64(x, logits, temperature)
    x, logits, lam = np.broadcast_arrays(x, logits, lam[..., None])
    lam = lam[..., 0]
    n = x.shape[-1]
    zero = x == 0
    m = zero.sum(-1)
    assert np.all(m >= 1), "not a boundary point"
    e = (n - m) * lam - m
    log_x_free = np.where(zero, 0.0, np.log(np.where(zero, 1.0, x)))
    k = (
        gammaln(n)
        + (n - 1) * np.log(lam)
        + logits.sum(-1)
        - (lam + 1) * log_x_free.sum(-1)
        - n * logsumexp(np.where(zero, logits, -np.inf), axis=-1)
    )
    return np.where(e < 0, np.inf, np.where(e > 0, -np.inf, k))


# --- charts used by the quadrature ----------------------------------------------------


def log_simplex_from_chart(u):
    """``u in R^(n-1) -> y = log_softmax([u, 0])``: every point of the log-simplex once."""
    u = np.asarray(u, dtype=np.float64)
    full = np.concatenate([u, np.zeros(u.shape[:-1] + (1,))], axis=-1)
    return log_softmax(full, axis=-1)  # shifts by the max first: exact to an ulp of each y_k


def exp_concrete_chart_log_jacobian(u):
    """``log |det d(y_1..y_{n-1}) / du|`` for ``y = log_softmax([u, 0])``.

    ``dy_i / du_j = delta_ij - s_j`` (``i, j < n``, ``s = softmax([u, 0])``), i.e.
    ``I - 1 s'^T`` with ``s' = s[:-1]``; by the matrix determinant lemma its determinant is
    ``1 - sum_{k<n} s_k = s_n``, so the log-Jacobian is ``y_n`` (taken from ``log_softmax``,
    not as ``log(1 - sum)``, which cancels in the tails).
    """
    return log_simplex_from_chart(u)[..., -1]


def concrete_chart_log_jacobian(u):
    """``log |det d(x_1..x_{n-1}) / du|`` for ``x = softmax([u, 0])``.

    ``dx_i / du_j = x_i (delta_ij - x_j)``, i.e. ``diag(x') (I - 1 x'^T)``: determinant
    ``prod_{k<n} x_k * x_n``, so the log-Jacobian is ``sum_{k=1..n} y_k``.
    """
    return log_simplex_from_chart(u).sum(-1)


def chart_log_jacobians_by_matrix(u):
    """Both log-Jacobians above, by ``numpy.linalg.slogdet`` of the explicit matrices: a
    cross-check of the closed forms where the matrices are well conditioned."""
    s = np.exp(log_simplex_from_chart(u))[..., :-1]
    k = s.shape[-1]
    jac_y = np.eye(k) - s[..., None, :]
    jac_x = s[..., :, None] * jac_y
    return np.linalg.slogdet(jac_y)[1], np.linalg.slogdet(jac_x)[1]


# --- binary family -------------------------------------------------------------------


def logit_binary_concrete_log_density(y, logits, temperature):
    """App. B Eq. 24, w.r.t. Lebesgue on R:
    ``log lam + a - lam y - 2 softplus(a - lam y)``: ``Logistic(a / lam, 1 / lam)``."""
    y, logits, lam = _f64(y, logits, temperature)
    score = logits - lam * y
    return np.log(lam) + score - 2 * _softplus(score)


def binary_concrete_log_density_at_logit(y, logits, temperature):
    """App. B Eq. 21 w.r.t. Lebesgue on (0, 1), at ``x = sigmoid(y)``:
    ``log g(y) - log x - log(1 - x)`` with ``-log x = softplus(-y)``, ``-log(1-x) = softplus(y)``.
    """
    y = np.asarray(y, dtype=np.float64)
    return logit_binary_concrete_log_density(y, logits, temperature) + _softplus(y) + _softplus(-y)


def binary_concrete_log_density(x, logits, temperature):
    """Eq. 21 directly in ``x``:
    ``log lam + a - (lam+1)(log x + log(1-x)) - 2 log(alpha x^-lam + (1-x)^-lam)``."""
    x, logits, lam = _f64(x, logits, temperature)
    log_x, log_1mx = np.log(x), np.log1p(-x)
    return (
        np.log(lam)
        + logits
        - (lam + 1) * (log_x + log_1mx)
        - 2 * np.logaddexp(logits - lam * log_x, -lam * log_1mx)
    )


def binary_concrete_boundary_log_density(x, logits, temperature):
    """Limit of Eq. 21 at ``x = 0`` (``~ (lam / alpha) x^(lam-1)``) or ``x = 1``
    (``~ lam alpha (1-x)^(lam-1)``): ``+inf`` (lam < 1), ``-inf`` (lam > 1), else the constant."""
    x, logits, lam = np.broadcast_arrays(*_f64(x, logits, temperature))
    assert np.all((x == 0) | (x == 1)), "not a boundary point"
    k = np.log(lam) + np.where(x == 1, logits, -logits)
    return np.where(lam < 1, np.inf, np.where(lam > 1, -np.inf, k))


def logistic_entropy(temperature):
    """Entropy of ``Logistic(loc, 1 / lam)``: ``2 - log lam`` (scale s: ``log s + 2``)."""
    return 2.0 - np.log(np.asarray(temperature, dtype=np.float64))


# --- Hard Concrete -------------------------------------------------------------------


def hard_concrete_log_p0(logits, temperature, low=-0.1, high=1.1):
    """``log P(Z = 0) = log sigmoid(lam log(-low / high) - a)``."""
    logits, lam = _f64(logits, temperature)
    return log_expit(lam * np.log(-low / high) - logits)


def hard_concrete_log_p1(logits, temperature, low=-0.1, high=1.1):
    """``log P(Z = 1) = log sigmoid(a - lam log((1 - low) / (high - 1)))``."""
    logits, lam = _f64(logits, temperature)
    return log_expit(logits - lam * np.log((1 - low) / (high - 1)))


def hard_concrete_log_prob(z, logits, temperature, low=-0.1, high=1.1):
    """Density on (0, 1), ``p_BC((z - low) / (high - low)) / (high - low)``; at 0 and 1 the
    log mass of the atom."""
    z, logits, lam = np.broadcast_arrays(*_f64(z, logits, temperature))
    inside = (z > 0) & (z < 1)
    s = (np.where(inside, z, 0.5) - low) / (high - low)
    density = binary_concrete_log_density(s, logits, lam) - np.log(high - low)
    return np.where(
        inside,
        density,
        np.where(
            z <= 0,
            hard_concrete_log_p0(logits, lam, low, high),
            hard_concrete_log_p1(logits, lam, low, high),
        ),
    )


# --- discrete models of the relaxation suite (tests/relax_suite.py) ----------------------


def hmm_posterior(ys, locs, trans, init, scale=1.0):
    """Forward-backward for ``z_0 ~ Cat(init)``, ``z_t ~ Cat(trans[z_{t-1}])``,
    ``y_t ~ N(locs[z_t], scale)``: ``(log p(y), p(z_t | y) of shape (T, K))``, float64."""
    ys, locs, trans, init = _f64(ys, locs, trans, init)
    log_lik = -0.5 * ((ys[:, None] - locs) / scale) ** 2 - np.log(scale * np.sqrt(2 * np.pi))
    log_trans = np.log(trans)
    alpha = [np.log(init) + log_lik[0]]
    for t in range(1, len(ys)):
        alpha.append(logsumexp(alpha[-1][:, None] + log_trans, 0) + log_lik[t])
    beta = [np.zeros(len(locs))]
    for t in range(len(ys) - 1, 0, -1):
        beta.insert(0, logsumexp(log_trans + (log_lik[t] + beta[0])[None, :], 1))
    log_px = logsumexp(alpha[-1])
    return log_px, np.exp(np.array(alpha) + np.array(beta) - log_px)


def subset_regression_log_joint(X, y, weights, prior, scale):
    """``log p(y, gamma)`` of ``gamma_j ~ Bernoulli(prior)``, ``y ~ N(X (gamma * w), scale)``
    for every ``gamma`` in ``{0, 1}^d`` (rows in ``itertools.product`` order), float64."""
    X, y, weights = _f64(X, y, weights)
    gammas = np.array(list(itertools.product((0.0, 1.0), repeat=X.shape[1])))
    log_prior = (gammas * np.log(prior) + (1 - gammas) * np.log1p(-prior)).sum(1)
    mean = (gammas * weights) @ X.T
    log_lik = (-0.5 * ((y - mean) / scale) ** 2 - np.log(scale * np.sqrt(2 * np.pi))).sum(1)
    return gammas, log_prior + log_lik


def mixture_posterior(x, locs):
    """``p(z_i = k | x_i, locs)`` of a mixture of ``N(locs_k, 1)`` with equal weights."""
    x, locs = _f64(x, locs)
    return softmax(-0.5 * (x[:, None] - locs[None, :]) ** 2, axis=-1)


def mixture_map_locations(x, prior_scale=10.0, iters=500):
    """The MAP of the mixture's locations under ``N(0, prior_scale^2)`` priors, the
    assignments summed out, by EM from ``(-1, 0, 1)``."""
    x = _f64(x)[0]
    locs = np.array([-1.0, 0.0, 1.0])
    for _ in range(iters):
        r = mixture_posterior(x, locs)
        locs = (r * x[:, None]).sum(0) / (r.sum(0) + 1 / prior_scale**2)
    return locs


def two_class_discrete_elbo(x, q1):
    """``(E_q[log p(x, z) - log q(z)], log p(x))`` of ``z_i ~ Bernoulli(1/2)``,
    ``x_i ~ N(2 z_i - 1, 1)`` with ``q(z_i = 1) = q1``, float64."""
    x, q1 = _f64(x, q1)
    log_joint = -0.5 * (x[:, None] - np.array([-1.0, 1.0])) ** 2 - np.log(2 * np.sqrt(2 * np.pi))
    q = np.clip(np.stack([1 - q1, q1], -1), 1e-300, 1.0)
    return float((q * (log_joint - np.log(q))).sum()), float(logsumexp(log_joint, -1).sum())
