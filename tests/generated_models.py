"""Small discrete models generated from a seed, as plain data (:class:`Spec`), for the
generated estimator suite (``generated_suite.py``); each backend builds model and guide
from a spec (``generated_backends.py``).

A model has ``N = 2`` data points ``y_n`` (``D = 2``-vectors; ``(2, D)`` per point under a
nested plate) and 1-4 discrete sites, each ``Bernoulli(logits).to_event(1)``,
``Categorical`` or ``OneHotCategorical``, at one of three levels: ``"global"`` (outside the
data plate), ``"data"`` (one value per point) or ``"inner"`` (a plate of 2 inside the data
plate).  Optionally a continuous latent ``w ~ Normal(0, 1)`` per point, reparameterised in the
guide as ``Normal(w_loc, exp(w_log_scale))``.  The observation is
``y ~ Normal(sum_s read_s(z_s) + w w_coef, 1).to_event(1)``, where each site's value is read
as :data:`READS` lists: by ``select``, by arithmetic, or by a step function.  The guide
mirrors the model with its own logits; a site with a ``parent`` adds the parent's value
times ``{site}_link`` to its logits (a hierarchical guide), and with ``guide_reads_w`` the
first data-level site adds ``w w_link``.  Options: the data plate subsampled to one point
per step, the whole of model and guide under ``scale(SCALE)``, the last point's observation
under ``mask(False)``, and (Pyro) the likelihood's parameters held by ``pyro.param``, by a
``PyroModule`` read outside ``forward``, or as leaf tensors closed over (NumPyro holds
every parameter by ``numpyro.param``: a closed-over JAX array has no gradient).
"""

from dataclasses import dataclass

import numpy as np

__all__ = [
    "FAMILIES",
    "LEVELS",
    "MAX_CONFIGURATIONS",
    "NODES",
    "PARAM_STYLES",
    "READS",
    "SCALE",
    "STEP_READS",
    "D",
    "N",
    "Site",
    "Spec",
    "data",
    "generate",
    "initial_params",
    "point_configurations",
    "site_values",
]

N = 2
D = 2
#: the factor of the ``scale`` handler around model and guide
SCALE = 3.0
FAMILIES = ("bernoulli", "categorical", "one_hot")
LEVELS = ("global", "data", "inner")
#: how the observation's mean reads a site's value ``z`` (``(D, size)`` tables ``T``,
#: ``(size, D)`` weights ``W``, ``A``, ``B`` and rows ``locs``):
#: ``arithmetic`` ``z @ W``; ``round`` ``round(z) @ W``; ``where``
#: ``sum_i where(z_i > 1/2, A_i, B_i)``; ``select`` ``select(T, z)``; ``argmax``
#: ``locs[argmax z]``; ``index`` ``locs[z]`` (an integer ``Categorical`` value)
READS = {
    "bernoulli": ("arithmetic", "round", "where"),
    "one_hot": ("select", "arithmetic", "argmax"),
    "categorical": ("select", "index"),
}
#: reads through a step function: the value's derivative is zero where it is defined
STEP_READS = ("round", "where", "argmax")
#: (Pyro) how the likelihood's parameters are held
PARAM_STYLES = ("param", "module", "leaf")
#: Gauss-Hermite nodes over ``w`` in the references
NODES = 24
#: the most configurations (with the global site's, and ``w``'s nodes) of one data point
#: that a generated model has, so that its enumeration takes milliseconds
MAX_CONFIGURATIONS = 4096


@dataclass(frozen=True)
class Site:
    """A discrete site: ``size`` is a Bernoulli's event size or the number of categories;
    the guide's logits read ``parent``'s value when it is set."""

    name: str
    family: str
    size: int
    level: str
    read: str
    parent: str | None = None


@dataclass(frozen=True)
class Spec:
    """A generated model and guide (the module docstring)."""

    seed: int
    sites: tuple[Site, ...]
    subsample: bool = False
    scale: bool = False
    mask: bool = False
    continuous: bool = False
    guide_reads_w: bool = False
    param_style: str = "param"

    @property
    def nested(self) -> bool:
        return any(s.level == "inner" for s in self.sites)

    def site(self, name: str) -> Site:
        return next(s for s in self.sites if s.name == name)

    def reader_of_w(self) -> Site | None:
        """The site whose guide logits read ``w`` (the first data-level site)."""
        if not self.guide_reads_w:
            return None
        return next(s for s in self.sites if s.level == "data")

    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        """Every parameter's shape, by name, model's and guide's."""
        shapes = {}
        for s in self.sites:
            shapes[f"{s.name}_prior"] = (s.size,)
            shapes[f"{s.name}_logits"] = (s.size,)
            if s.parent is not None:
                shapes[f"{s.name}_link"] = (self.site(s.parent).size, s.size)
            for table in self.tables(s):
                shapes[table] = (D, s.size) if s.read == "select" else (s.size, D)
        if self.continuous:
            shapes.update(w_coef=(D,), w_loc=(), w_log_scale=())
        if self.guide_reads_w:
            shapes["w_link"] = (self.reader_of_w().size,)
        return shapes

    def tables(self, site: Site) -> tuple[str, ...]:
        """The names of the likelihood's parameters that read ``site``."""
        if site.read == "where":
            return f"{site.name}_A", f"{site.name}_B"
        kind = {"select": "T", "argmax": "locs", "index": "locs"}.get(site.read, "W")
        return (f"{site.name}_{kind}",)

    def likelihood_params(self) -> tuple[str, ...]:
        """The parameters of the observation's mean (those ``param_style`` holds)."""
        names = [t for s in self.sites for t in self.tables(s)]
        return (*names, "w_coef") if self.continuous else tuple(names)

    def model_params(self) -> tuple[str, ...]:
        return tuple(f"{s.name}_prior" for s in self.sites) + self.likelihood_params()


def site_values(site: Site) -> int:
    """The number of values of ``site`` at one data point (both elements of an inner plate)."""
    count = 2**site.size if site.family == "bernoulli" else site.size
    return count**2 if site.level == "inner" else count


def point_configurations(spec: Spec) -> int:
    """The number of configurations of the global site (if any) and one data point's
    latents, ``w`` counted by its quadrature nodes."""
    return int(np.prod([site_values(s) for s in spec.sites])) * (NODES if spec.continuous else 1)


def generate(seed: int) -> Spec:
    """The spec of ``seed``: each feature drawn independently, its sites ordered by level
    (global, data, inner) so that a parent precedes its child and encloses it; drawn again
    (from the next stream of the seed) until a point has at most
    :data:`MAX_CONFIGURATIONS` configurations."""
    for attempt in range(100):
        spec = _draw(np.random.default_rng([seed, attempt]), seed)
        if point_configurations(spec) <= MAX_CONFIGURATIONS:
            return spec
    raise ValueError(f"generate: no spec of seed {seed!r} within {MAX_CONFIGURATIONS}")


def _draw(rng: np.random.Generator, seed: int) -> Spec:
    global_site = rng.random() < 0.3
    inner = int(rng.integers(1, 3)) if rng.random() < 0.3 else 0
    count = int(rng.integers(1, 4))
    levels = ["global"] * global_site + ["data"] * count + ["inner"] * inner
    sites = []
    for i, level in enumerate(levels[:4]):
        family = FAMILIES[rng.integers(len(FAMILIES))]
        size = int(rng.integers(1, 4) if family == "bernoulli" else rng.integers(2, 4))
        read = READS[family][rng.integers(len(READS[family]))]
        outer = [s.name for s in sites if LEVELS.index(s.level) <= LEVELS.index(level)]
        parent = outer[rng.integers(len(outer))] if outer and rng.random() < 0.4 else None
        sites.append(Site(f"z{i}", family, size, level, read, parent))
    if not any(s.level == "data" for s in sites):  # the data plate holds a site
        sites.append(Site(f"z{len(sites)}", "bernoulli", 1, "data", "arithmetic"))
    continuous = bool(rng.random() < 0.3)
    return Spec(
        seed=seed,
        sites=tuple(sites),
        subsample=bool(rng.random() < 0.3),
        scale=bool(rng.random() < 0.3),
        mask=bool(rng.random() < 0.3),
        continuous=continuous,
        guide_reads_w=continuous and bool(rng.random() < 0.5),
        param_style=PARAM_STYLES[rng.integers(len(PARAM_STYLES))],
    )


def initial_params(spec: Spec) -> dict[str, np.ndarray]:
    """Parameters drawn ``N(0, 0.7^2)``, the likelihood's ``N(0, 2^2)`` so that the posterior
    couples the latents; ``w_log_scale`` ``log 0.7``."""
    rng = np.random.default_rng([spec.seed, 1])
    likelihood = spec.likelihood_params()
    params = {
        name: (2.0 if name in likelihood else 0.7) * rng.standard_normal(shape)
        for name, shape in spec.param_shapes().items()
    }
    if spec.continuous:
        params["w_log_scale"] = np.array(np.log(0.7))
    return params


def data(spec: Spec) -> np.ndarray:
    """``y``, ``(N, D)`` or ``(N, 2, D)`` under a nested plate, drawn ``N(0, 2^2)``."""
    rng = np.random.default_rng([spec.seed, 2])
    return 2.0 * rng.standard_normal((N, 2, D) if spec.nested else (N, D))
