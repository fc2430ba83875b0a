"""Small discrete models for the estimator tests, and their exact objectives by enumeration
in float64 numpy (independent of the code under test).

Each problem has a data plate of ``N`` points ``y_n`` (2-vectors) with local latents, the
guide's parameters shared across points:

- ``"bernoulli"``: ``z ~ Bernoulli(logits=prior)^3``, ``y ~ Normal(z @ W, 1)``; guide
  ``z ~ Bernoulli(logits=a)^3``.
- ``"categorical"``: ``c1 ~ OneHot(logits=prior1)``, ``c2 ~ OneHot(logits=prior2)`` (3-way),
  ``y ~ Normal(mu[:, c1] + nu[:, c2], 1)``; guide ``c1 ~ OneHot(a1)``, ``c2 ~ OneHot(a2)``.
- ``"mixed"``: ``b ~ Bernoulli(logits=prior_b)^2``, ``c ~ Categorical(logits=prior_c)``
  (3-way, read with ``select``), ``y ~ Normal(b @ W + mu[:, c], 1)``; guide
  ``b ~ Bernoulli(logits=a)^2``, then ``c ~ Categorical(logits=g + b @ V)``, which reads
  ``b`` (a hierarchical guide).
- ``"continuous"``: a global ``w ~ Normal(0, 1)``, ``z ~ Bernoulli(logits=prior)^2``,
  ``y ~ Normal(z + w, 1)``; guide ``w ~ Normal(m, 1/2)``, then
  ``z ~ Bernoulli(logits=a + c w)``, which reads the continuous ``w`` (Gauss-Hermite
  quadrature over ``w``).

And one relaxed problem (scalar ``y_n``, its ``K = 2`` bound by quadrature):
``z ~ LogitBinaryConcrete(1/2, prior)``, ``y ~ Normal(w sigmoid(z), 1)``; guide
``z ~ LogitBinaryConcrete(2/3, a y + c)``.  ``LogitBinaryConcrete(lam, l)`` is the logistic
law of location ``l / lam`` and scale ``1 / lam`` (Maddison et al. 2017, App. B), taken
here from ``scipy.stats.logistic``.
"""

import itertools

import numpy as np
from scipy import stats
from scipy.special import expit, log_expit, log_softmax, logsumexp

__all__ = [
    "GUIDE_PARAMS",
    "MASK",
    "PROBLEMS",
    "RELAXED_PARAMS",
    "RELAXED_TEMPERATURES",
    "RELAXED_Y",
    "disarm_law",
    "exact_gradient",
    "objective",
    "pair_score_function_variance",
    "problem",
    "relaxed_bounds",
    "relaxed_gradients",
]

N = 2
_SHAPES = {
    "bernoulli": {"prior": (3,), "W": (3, 2), "a": (3,)},
    "categorical": {
        "prior1": (3,),
        "prior2": (3,),
        "mu": (2, 3),
        "nu": (2, 3),
        "a1": (3,),
        "a2": (3,),
    },
    "mixed": {
        "prior_b": (2,),
        "prior_c": (3,),
        "W": (2, 2),
        "mu": (2, 3),
        "a": (2,),
        "g": (3,),
        "V": (2, 3),
    },
}
_SHAPES["continuous"] = {"prior": (2,), "m": (), "c": (), "a": (2,)}
_SHAPES["masked"] = _SHAPES["categorical"]
GUIDE_PARAMS = {
    "bernoulli": ("a",),
    "categorical": ("a1", "a2"),
    "masked": ("a1", "a2"),
    "mixed": ("a", "g", "V"),
    "continuous": ("m", "c", "a"),
}
PROBLEMS = ("bernoulli", "categorical", "mixed")
#: ``"masked"``: the categorical problem with ``c1``'s middle category impossible, its
#: logit -inf in the model and the guide (added to ``prior1`` and ``a1``)
MASK = np.array([0.0, -np.inf, 0.0])


def problem(name: str, seed: int = 0) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """``(params, y)``: parameters drawn ``N(0, 0.7^2)``, the likelihood's weights
    (``W``, ``mu``, ``nu``) ``N(0, 2^2)`` so that the posterior couples the latents, and
    data ``y`` (``(N, 2)``) drawn ``N(0, 2^2)``."""
    rng = np.random.default_rng(seed)
    params = {
        k: np.asarray((2.0 if k in ("W", "mu", "nu") else 0.7) * rng.standard_normal(shape))
        for k, shape in _SHAPES[name].items()
    }
    return params, 2.0 * rng.standard_normal((N, 2))


def _bits(n: int) -> list[np.ndarray]:
    return [np.array(b, float) for b in itertools.product((0, 1), repeat=n)]


def _one_hots(n: int) -> list[np.ndarray]:
    return list(np.eye(n))


def _bernoulli(logits: np.ndarray, b: np.ndarray) -> float:
    return float(np.sum(b * log_expit(logits) + (1 - b) * log_expit(-logits)))


def _categorical(logits: np.ndarray, c: np.ndarray) -> float:
    return float(log_softmax(logits)[np.argmax(c)])


def _normal(y: np.ndarray, mean: np.ndarray) -> float:
    return float(np.sum(-0.5 * (y - mean) ** 2 - 0.5 * np.log(2 * np.pi)))


def _configurations(name: str, p: dict, y: np.ndarray) -> list[tuple[float, float]]:
    """``(log p(y, z), log q(z))`` for every configuration ``z`` of one point ``y``."""
    out = []
    if name == "bernoulli":
        for z in _bits(3):
            log_p = _bernoulli(p["prior"], z) + _normal(y, z @ p["W"])
            out.append((log_p, _bernoulli(p["a"], z)))
    elif name in ("categorical", "masked"):
        mask = MASK if name == "masked" else 0.0
        for c1, c2 in itertools.product(_one_hots(3), repeat=2):
            if name == "masked" and c1[1]:
                continue  # impossible: probability 0 under the model and the guide
            mean = p["mu"] @ c1 + p["nu"] @ c2
            log_p = _categorical(p["prior1"] + mask, c1) + _categorical(p["prior2"], c2)
            log_q = _categorical(p["a1"] + mask, c1) + _categorical(p["a2"], c2)
            out.append((log_p + _normal(y, mean), log_q))
    else:
        for b, c in itertools.product(_bits(2), _one_hots(3)):
            log_p = _bernoulli(p["prior_b"], b) + _categorical(p["prior_c"], c)
            log_p += _normal(y, b @ p["W"] + p["mu"] @ c)
            log_q = _bernoulli(p["a"], b) + _categorical(p["g"] + b @ p["V"], c)
            out.append((log_p, log_q))
    return out


def _continuous_elbo(p: dict, y: np.ndarray) -> float:
    """The ``"continuous"`` problem's ELBO: 80-node Gauss-Hermite quadrature over ``w``, the
    configurations of ``z`` enumerated at each node."""
    x, weights = np.polynomial.hermite.hermgauss(80)
    total = 0.0
    for node, weight in zip(p["m"] + 0.5 * np.sqrt(2) * x, weights / np.sqrt(np.pi), strict=True):
        inner = -0.5 * node**2 + 0.5 * ((node - p["m"]) / 0.5) ** 2 + np.log(0.5)
        for point in y:
            for z in _bits(2):
                log_q = _bernoulli(p["a"] + p["c"] * node, z)
                log_p = _bernoulli(p["prior"], z) + _normal(point, z + node)
                inner += np.exp(log_q) * (log_p - log_q)
        total += weight * inner
    return total


def objective(name: str, params: dict, y: np.ndarray, k: int = 1) -> float:
    """The ELBO (``k = 1``) or the ``k``-sample bound ``E log (1/k) sum_j w_j`` summed over
    the points, by enumerating the ``k`` configurations (quadrature for ``"continuous"``,
    ``k = 1`` only)."""
    if name == "continuous":
        return _continuous_elbo(params, y)
    total = 0.0
    for point in y:
        log_p, log_q = np.array(_configurations(name, params, point)).T
        for idx in itertools.product(range(len(log_p)), repeat=k):
            idx = list(idx)
            log_w = log_p[idx] - log_q[idx]
            total += np.exp(log_q[idx].sum()) * (logsumexp(log_w) - np.log(k))
    return total


def exact_gradient(name: str, params: dict, y: np.ndarray, k: int = 1) -> dict[str, np.ndarray]:
    """The gradient of :func:`objective` by central differences (step 1e-6, float64)."""
    grads = {}
    for key, value in params.items():
        grad = np.zeros_like(value)
        for i in np.ndindex(value.shape):
            shifted = []
            for step in (1e-6, -1e-6):
                moved = dict(params, **{key: value.copy()})
                moved[key][i] += step
                shifted.append(objective(name, moved, y, k))
            grad[i] = (shifted[0] - shifted[1]) / 2e-6
        grads[key] = grad
    return grads


def _antithetic_cells(logit: float) -> list[tuple[float, float, float]]:
    """``(b, b~, probability)`` for one dimension of DisARM's pair: ``u ~ Uniform(0, 1)``,
    ``b = 1[u < theta]``, ``b~ = 1[1 - u < theta]``, ``theta = sigmoid(logit)``.  The pair is
    constant on each of the intervals that ``theta`` and ``1 - theta`` cut ``(0, 1)`` into,
    and the probability of a cell is its length."""
    theta = expit(logit)
    cuts = [0.0, min(theta, 1 - theta), max(theta, 1 - theta), 1.0]
    return [
        (float(mid < theta), float(1 - mid < theta), right - left)
        for left, right in itertools.pairwise(cuts)
        if right > left
        for mid in [(left + right) / 2]
    ]


def disarm_law(params: dict, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The exact distribution of DisARM's gradient for the guide's logits ``a`` on the
    ``"bernoulli"`` problem: ``(probabilities (M,), gradients (M, 3))`` over every
    combination of the points' antithetic pairs, the gradient summed over the points.
    Per point (Dong et al. 2020, Eq. 12), ``g_i = 1/2 (f(b) - f(b~)) (-1)^{b~_i}
    1[b_i != b~_i] sigmoid(|a_i|)``, ``f = log p(y, b) - log q(b)``; the points' uniforms are
    independent."""
    a = params["a"]
    per_point = []
    for point in y:
        f = {
            tuple(b): lp - lq
            for b, (lp, lq) in zip(
                _bits(3), _configurations("bernoulli", params, point), strict=True
            )
        }
        law = []
        for cells in itertools.product(*(_antithetic_cells(logit) for logit in a)):
            b, anti, probability = (np.array(c) for c in zip(*cells, strict=True))
            signal = (f[tuple(b)] - f[tuple(anti)]) / 2
            law.append(
                (probability.prod(), signal * (1 - 2 * anti) * (b != anti) * expit(np.abs(a)))
            )
        per_point.append(law)
    combined = [
        (np.prod([p for p, _ in combo]), np.sum([g for _, g in combo], 0))
        for combo in itertools.product(*per_point)
    ]
    return np.array([p for p, _ in combined]), np.array([g for _, g in combined])


def pair_score_function_variance(params: dict, y: np.ndarray) -> float:
    """Total per-draw variance, over ``a``, of the score function on the ``"bernoulli"``
    problem with two independent samples per point, each baselined by the other's cost
    (the leave-one-out baseline): ``1/2 sum_k (f(b_k) - f(b_{1-k})) d log q(b_k) / d a``,
    which is ``1/2 (f(b_0) - f(b_1)) (b_0 - b_1)``; the same two evaluations of ``f`` per
    point as DisARM.  By enumerating the pairs."""
    total = 0.0
    for point in y:
        log_p, log_q = np.array(_configurations("bernoulli", params, point)).T
        f, b = log_p - log_q, np.array(_bits(3))
        q = np.exp(log_q[:, None] + log_q[None, :])
        g = ((f[:, None] - f[None, :]) / 2)[..., None] * (b[:, None] - b[None, :])
        mean = np.einsum("ij,ijk->k", q, g)
        total += float(np.einsum("ij,ijk->k", q, g**2).sum() - np.sum(mean**2))
    return total


#: the relaxed problem's parameters (model: ``prior``, ``w``; guide: ``a``, ``c``) and data
RELAXED_PARAMS = {"prior": 0.3, "w": 2.0, "a": -0.4, "c": 0.5}
RELAXED_Y = np.array([1.3, -0.7])
#: the relaxed problem's temperatures, model and guide
RELAXED_TEMPERATURES = (0.5, 2 / 3)


def relaxed_bounds(params: dict, y: np.ndarray, k: int = 2) -> np.ndarray:
    """The ``K = 2`` bound ``E log (w_1 + w_2) / 2`` (``k = 1``: the ELBO ``E log w``) of
    each point of the relaxed problem, by the trapezoidal rule on 400 points over 40
    guide scales either side of its mean, in each sample (converged to 1e-8: the
    integrand decays exponentially)."""
    lam_p, lam_q = RELAXED_TEMPERATURES
    prior = stats.logistic(loc=params["prior"] / lam_p, scale=1 / lam_p)
    out = []
    for point in y:
        q = stats.logistic(loc=(params["a"] * point + params["c"]) / lam_q, scale=1 / lam_q)
        z = np.linspace(q.mean() - 40 / lam_q, q.mean() + 40 / lam_q, 400)
        likelihood = stats.norm(params["w"] * expit(z), 1.0).logpdf(point)
        log_w = prior.logpdf(z) + likelihood - q.logpdf(z)
        weight = q.pdf(z) * (z[1] - z[0])
        if k == 1:
            out.append(float(weight @ log_w))
            continue
        pair = np.logaddexp(log_w[:, None], log_w[None, :]) - np.log(2)
        out.append(float(weight @ pair @ weight))
    return np.array(out)


def relaxed_gradients(params: dict, y: np.ndarray) -> dict[str, np.ndarray]:
    """The gradient of each point's :func:`relaxed_bounds` by central differences (step
    1e-6), ``(len(y),)`` per parameter."""
    grads = {}
    for key in params:
        up = relaxed_bounds(dict(params, **{key: params[key] + 1e-6}), y)
        down = relaxed_bounds(dict(params, **{key: params[key] - 1e-6}), y)
        grads[key] = (up - down) / 2e-6
    return grads
