"""The exact objectives of a generated model (``generated_models.py``) in float64 numpy,
independent of the code under test: every configuration of the discrete sites enumerated,
``w`` integrated by Gauss-Hermite quadrature, and the gradient with respect to every
parameter by central differences.

A configuration of one data point is a value of each of its latents (the global site's
too, on the first axis of the grids below, which the points share); its weight is its
probability under the guide (times the quadrature weight of ``w``'s node).  The objective is
that of the whole unscaled model on all ``N`` points, times ``SCALE`` under the ``scale``
handler: the data plate's subsampling changes the estimate, not what it estimates.
"""

import itertools

import numpy as np
from scipy.special import log_expit, log_softmax

from tests.generated_models import NODES, SCALE, Site, Spec

__all__ = ["exact_gradient", "objective"]

#: the relative step of the central differences
STEP = 1e-6


def _element_values(site: Site) -> np.ndarray:
    """The values of one element of ``site``: bit vectors or one-hot rows, ``(m, size)``."""
    if site.family == "bernoulli":
        return np.array(list(itertools.product((0.0, 1.0), repeat=site.size)))
    return np.eye(site.size)


def _values(site: Site, nested: bool) -> np.ndarray:
    """``(m, [L,] size)``: every value of ``site`` at one point; ``L`` the elements of the
    level (2 in the inner plate, else 1) when the model has a nested plate."""
    one = _element_values(site)
    if site.level == "inner":
        return np.array([np.stack(pair) for pair in itertools.product(one, repeat=2)])
    return one[:, None, :] if nested else one


def _on_axis(array: np.ndarray, axis: int, axes: int) -> np.ndarray:
    """``array`` (first dim the values) moved to grid axis ``axis`` of ``axes``."""
    return array.reshape((1,) * axis + array.shape[:1] + (1,) * (axes - axis - 1) + array.shape[1:])


def _log_mass(site: Site, logits: np.ndarray, value: np.ndarray, nested: bool) -> np.ndarray:
    if site.family == "bernoulli":
        terms = value * log_expit(logits) + (1 - value) * log_expit(-logits)
    else:
        terms = value * log_softmax(logits, axis=-1)
    out = terms.sum(-1)
    return out.sum(-1) if nested else out


def _read(site: Site, value: np.ndarray, p: dict) -> np.ndarray:
    """The mean's term of ``site`` at a discrete value, by the definition of the read."""
    name = site.name
    if site.read in ("arithmetic", "round"):
        return value @ p[f"{name}_W"]
    if site.read == "where":
        return np.where(value[..., None] > 0.5, p[f"{name}_A"], p[f"{name}_B"]).sum(-2)
    if site.read == "select":
        return value @ p[f"{name}_T"].T
    return value @ p[f"{name}_locs"]  # argmax, index: the row of the one-hot's category


def _guide_logits(spec: Spec, site: Site, values: dict, w, p: dict) -> np.ndarray:
    logits = p[f"{site.name}_logits"]
    if site.parent is not None:
        logits = logits + values[site.parent] @ p[f"{site.name}_link"]
    if spec.reader_of_w() == site:
        logits = logits + w[..., None] * p["w_link"]
    return logits


def _grid(spec: Spec) -> tuple[dict, int]:
    """The value of every discrete site on the grid of one point's configurations (axis 0
    the global site's, then one axis per local site, then ``w``'s nodes)."""
    local = [s for s in spec.sites if s.level != "global"]
    axes = 1 + len(local) + spec.continuous
    values = {}
    for s in spec.sites:
        axis = 0 if s.level == "global" else 1 + local.index(s)
        values[s.name] = _on_axis(_values(s, spec.nested), axis, axes)
    return values, axes


def _point(spec: Spec, p: dict, y: np.ndarray, observed: float):
    """``(log weight, log p, log q)`` of one point's configurations, unscaled, on the grid;
    the global site's terms excluded (they are the points' shared factor)."""
    values, axes = _grid(spec)
    w = log_w_node = log_p = log_q = 0.0
    if spec.continuous:
        nodes, weights = np.polynomial.hermite.hermgauss(NODES)
        scale = np.exp(p["w_log_scale"])
        w = _on_axis(p["w_loc"] + np.sqrt(2) * scale * nodes, axes - 1, axes)
        w = w[..., None] if spec.nested else w
        log_w_node = _on_axis(np.log(weights / np.sqrt(np.pi)), axes - 1, axes)
        log_p = _sum_level(-0.5 * w**2 - 0.5 * np.log(2 * np.pi), spec.nested)
        log_q = _sum_level(
            -0.5 * ((w - p["w_loc"]) / scale) ** 2 - np.log(scale) - 0.5 * np.log(2 * np.pi),
            spec.nested,
        )
    log_q_discrete, mean = 0.0, 0.0
    for s in spec.sites:
        mean = mean + _read(s, values[s.name], p)
        if s.level == "global":
            continue
        log_p = log_p + _log_mass(s, p[f"{s.name}_prior"], values[s.name], spec.nested)
        logits = _guide_logits(spec, s, values, w, p)
        log_q_discrete = log_q_discrete + _log_mass(s, logits, values[s.name], spec.nested)
    if spec.continuous:
        mean = mean + w[..., None] * p["w_coef"]
    log_lik = (-0.5 * (y - mean) ** 2 - 0.5 * np.log(2 * np.pi)).sum(-1)
    log_p = log_p + observed * (log_lik.sum(-1) if spec.nested else log_lik)
    shape = np.broadcast_shapes(*(np.shape(a) for a in (log_p, log_q_discrete, log_w_node)))
    return tuple(
        np.broadcast_to(a, shape)
        for a in (log_q_discrete + log_w_node, log_p, log_q + log_q_discrete)
    )


def _sum_level(a: np.ndarray, nested: bool) -> np.ndarray:
    return a.sum(-1) if nested else a


def _global(spec: Spec, p: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(log q, log p, log q)`` of the global site's values (one empty value without)."""
    site = next((s for s in spec.sites if s.level == "global"), None)
    if site is None:
        return np.zeros(1), np.zeros(1), np.zeros(1)
    value = _values(site, spec.nested)
    log_q = _log_mass(site, p[f"{site.name}_logits"], value, spec.nested)
    return log_q, _log_mass(site, p[f"{site.name}_prior"], value, spec.nested), log_q


def objective(spec: Spec, params: dict, y: np.ndarray, k: int = 1) -> float:
    """The ELBO (``k = 1``) or the 2-sample bound (``k = 2``) ``E log (w_1 + w_2) / 2`` of
    each factor (a data point; the whole model when a global site couples the points),
    summed, times ``SCALE`` under the scale handler."""
    observed = np.ones(len(y))
    if spec.mask:
        observed[-1] = 0.0
    g_weight, g_log_p, g_log_q = _global(spec, params)
    points = [_point(spec, params, point, m) for point, m in zip(y, observed, strict=True)]
    if k == 1:
        total = g_log_p - g_log_q
        for log_weight, log_p, log_q in points:
            per = np.exp(log_weight) * (log_p - log_q)
            total = total + per.reshape(len(per), -1).sum(-1)
        value = float(np.sum(np.exp(g_weight) * total))
    elif k == 2:
        value = _two_sample_bound(points, g_weight, g_log_p - g_log_q)
    else:
        raise ValueError(f"objective: k must be 1 or 2, got {k!r}")
    return value * (SCALE if spec.scale else 1.0)


def _two_sample_bound(points: list, g_weight: np.ndarray, g_log_w: np.ndarray) -> float:
    factors = []
    if len(g_weight) == 1:  # no global site: a factor per point
        for log_weight, log_p, log_q in points:
            factors.append((log_weight.ravel(), (log_p - log_q).ravel()))
    else:  # one factor: the global site's value and every point's
        log_weight, log_w = g_weight, g_log_w
        for point_weight, log_p, log_q in points:
            point_weight = point_weight.reshape(len(g_weight), -1)
            point_log_w = (log_p - log_q).reshape(len(g_weight), -1)
            log_weight = log_weight[..., None] + _expand(point_weight, log_weight.ndim)
            log_w = log_w[..., None] + _expand(point_log_w, log_w.ndim)
        factors.append((log_weight.ravel(), log_w.ravel()))
    total = 0.0
    for log_weight, log_w in factors:
        pair_weight = np.exp(log_weight[:, None] + log_weight[None, :])
        pair_bound = np.logaddexp(log_w[:, None], log_w[None, :]) - np.log(2)
        total += float(np.sum(pair_weight * pair_bound))
    return total


def _expand(point: np.ndarray, ndim: int) -> np.ndarray:
    """``(G, C)`` to ``(G, 1, ..., 1, C)`` with ``ndim`` leading axes before ``C``."""
    return point.reshape(point.shape[:1] + (1,) * (ndim - 1) + point.shape[1:])


def exact_gradient(spec: Spec, params: dict, y: np.ndarray, k: int = 1) -> dict:
    """The gradient of :func:`objective` with respect to every parameter, by central
    differences (step ``STEP``, float64)."""
    grads = {}
    for key, value in params.items():
        grad = np.zeros_like(value)
        for i in np.ndindex(value.shape):
            shifted = []
            for step in (STEP, -STEP):
                moved = dict(params, **{key: np.array(value, dtype=float)})
                moved[key][i] += step
                shifted.append(objective(spec, moved, y, k))
            grad[i] = (shifted[0] - shifted[1]) / (2 * STEP)
        grads[key] = grad
    return grads
