"""The generated models and their references (``generated_models.py``,
``generated_references.py``), which the generated estimator suite rests on."""

from tests.generated_models import (
    FAMILIES,
    LEVELS,
    PARAM_STYLES,
    READS,
    data,
    generate,
    initial_params,
)
from tests.generated_references import objective
from tests.generated_suite import SEEDS

OPTIONS = ("subsample", "scale", "mask", "continuous", "guide_reads_w")


def _features(spec) -> set:
    out = {("style", spec.param_style)} | {(o, getattr(spec, o)) for o in OPTIONS}
    for s in spec.sites:
        out |= {("family", s.family), ("level", s.level), ("read", s.family, s.read)}
        out |= {("hierarchical", s.parent is not None)}
    return out


def test_the_fixed_seeds_cover_every_feature():
    """Every family, level, read, option (on and off), parameter style and both kinds of
    guide (hierarchical, independent) appear among the models of the fixed sample."""
    seen = set().union(*(_features(generate(seed)) for seed in SEEDS))
    wanted = {("family", f) for f in FAMILIES} | {("level", lv) for lv in LEVELS}
    wanted |= {("read", f, r) for f, reads in READS.items() for r in reads}
    wanted |= {("style", s) for s in PARAM_STYLES}
    wanted |= {(o, v) for o in (*OPTIONS, "hierarchical") for v in (True, False)}
    assert wanted <= seen, sorted(wanted - seen, key=str)


def test_the_two_sample_bound_lies_above_the_elbo():
    """``ELBO < E log (w_1 + w_2) / 2`` (Burda et al. 2016, Thm. 1; strictly, as no guide
    of the sample is the posterior) for the references of the fixed sample."""
    for seed in SEEDS:
        spec = generate(seed)
        params, y = initial_params(spec), data(spec)
        elbo, bound = objective(spec, params, y, 1), objective(spec, params, y, 2)
        assert elbo < bound, (seed, elbo, bound)
