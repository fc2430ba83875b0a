"""Gradient quality on a sigmoid belief net (binarized MNIST): Concrete vs score function.

    python benchmarks/gradient_quality.py [--fast] [--threads N]

The model is ``SigmoidBeliefNet(latents=(200,), hidden=200)`` of ``problems.py`` in each
package (the paper's 200H~784V): ``z ~ Bernoulli(1/2)^200``,
``x | z ~ Bernoulli(sigmoid(decoder(z)))^784``, decoder and encoder tanh MLPs with two
hidden layers of 200 (Glorot init, decoder output bias the pixel base rates).  Reads
binarized MNIST with ``load_binarized_mnist()`` (``CONCRETE_MNIST``, or a cached download).
Estimators of the gradient with respect to the **encoder** (guide) parameters, on the same networks:

- **Concrete**: ``Trace_ELBO`` on ``relax(model, 1/2)`` with the amortised guide
  ``z ~ LogitBinaryConcrete(2/3, encoder(x))`` (pathwise);
- **score function**: ``TraceGraph_ELBO`` on the discrete model with the guide
  ``z ~ Bernoulli(logits=encoder(x))`` (REINFORCE, each image's own downstream cost);
- **score function + baseline**: the same with Pyro's ``nn_baseline``, an input-dependent
  baseline ``b(x)`` (an MLP 784-100-1, NVIL's control variate) regressing the learning
  signal ``log p(x, z) - log q(z | x)``, its output bias started at the mean signal (about
  -200 nats) and trained at lr ``BASELINE_LR`` by ``TraceGraph_ELBO``'s own baseline loss;
- **Concrete, NumPyro**: the same relaxed estimator in NumPyro (``jax.vmap`` of
  ``jax.grad`` of ``Trace_ELBO().loss``), at the same parameter values, as a cross-check;
- **reference**: a local-expectation estimator of the discrete-ELBO gradient (Titsias &
  Lazaro-Gredilla 2015; for each latent the sum over its two values is exact given a
  sample of the others: unbiased, low variance, 201 decoder passes per image).

1. **Variance**, at two parameter points shared by every estimator: the initialisation,
   and after a common warm-up (``warmup`` Adam steps of Concrete training; the baseline
   then refitted with the other networks fixed).  On one fixed minibatch, ``samples``
   independent single-sample gradients per estimator (the Pyro ones interleaved, so their
   CPU times are comparable) give the **relative variance** ``tr Cov[g] / ‖E g‖²`` (total
   variance over the squared norm of the mean), +- a delete-one-group jackknife standard
   error.  ``‖E g‖²`` is estimated without bias (``‖mean‖² - tr Cov / n``) from the
   estimator's own samples for Concrete, whose mean is the relaxed-ELBO gradient; for the
   score-function estimators, whose mean is the discrete-ELBO gradient and too small
   against their variance to resolve from their own samples, from the reference.  The
   cosine column compares each estimator's mean with the discrete-ELBO gradient (the
   reference's mean; independent samples, bias-corrected norms): for Concrete it measures
   the relaxation's bias, for the score function it checks the reference.
2. **Held-out bound** after training each estimator for ``steps`` steps from the same
   initialisation on the same minibatches (Adam, lr 1e-3): ``discrete_bound`` with ``K``
   importance samples on a fixed random subset of the test images (the file is ordered by
   digit), per image, +- the standard error over equal chunks of that subset, and the
   paired difference to Concrete (Pyro) on the same chunks.

Markdown tables on stdout; ``--fast``: a few hundred training images and tiny budgets (the
NumPyro model is then used for the variance only).
"""

import copy
import itertools
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from common import (
    Options,
    environment,
    import_numpyro_concrete,
    markdown_table,
    parse_options,
    quiet_library_warnings,
)

LATENTS, HIDDEN, BATCH = 200, 200, 64
PRIOR_TEMPERATURE, POSTERIOR_TEMPERATURE = 1 / 2, 2 / 3
LR = 1e-3
BASELINE_LR = 1e-2  # the baseline network's step size (NVIL trains it faster, too)
ENCODER_SIZES = [784, HIDDEN, HIDDEN, LATENTS]
BASELINE_SIZES = [784, 100, 1]

CONCRETE = "Concrete (Pyro)"
SCORE = "score function (Pyro)"
SCORE_BASELINE = "score function + baseline (Pyro)"
CONCRETE_NUMPYRO = "Concrete (NumPyro, jit)"


@dataclass(frozen=True)
class Budget:
    train_images: int | None  # None: the whole training split
    warmup: int  # Concrete steps to the second parameter point
    baseline_fit: int  # steps fitting the baseline at a fixed parameter point
    samples: int  # gradient samples per estimator and point
    reference_samples: int  # local-expectation samples of the discrete-ELBO gradient
    groups: int  # jackknife groups
    steps: int  # training steps per estimator (held-out bound)
    test_images: int
    chunks: int
    k: int  # importance samples


def budget(options: Options) -> Budget:
    if options.fast:
        return Budget(300, 3, 3, 8, 2, 4, 4, 40, 2, 4)
    return Budget(None, 1000, 500, 300, 40, 10, 2000, 1000, 10, 100)


# --------------------------------------------------------------------------- statistics


@dataclass
class Moments:
    """Running sums of an estimator's gradient samples, by jackknife group."""

    sums: list = field(default_factory=list)  # per group: sum of g (a float64 vector)
    squares: list = field(default_factory=list)  # per group: sum of ‖g‖²
    counts: list = field(default_factory=list)
    seconds: float = 0.0  # CPU time spent drawing the samples

    def add(self, group: int, total: np.ndarray, square: float, count: int = 1) -> None:
        while len(self.sums) <= group:
            self.sums.append(np.zeros(total.shape, dtype=np.float64))
            self.squares.append(0.0)
            self.counts.append(0)
        self.sums[group] += total
        self.squares[group] += square
        self.counts[group] += count

    @property
    def count(self) -> int:
        return sum(self.counts)

    def stats(self, leave_out: int | None = None) -> tuple[float, float, np.ndarray]:
        """(tr Cov, unbiased ``‖E g‖² = ‖mean‖² - tr Cov / n``, mean), from every
        group but ``leave_out``."""
        keep = [b for b in range(len(self.sums)) if b != leave_out]
        n = sum(self.counts[b] for b in keep)
        mean = sum(self.sums[b] for b in keep) / n
        mean_sq = float(mean @ mean)
        trace = (sum(self.squares[b] for b in keep) - n * mean_sq) / (n - 1)
        return trace, mean_sq - trace / n, mean

    def jackknife(self, fn: Callable[[tuple], float]) -> tuple[float, float]:
        """``fn(stats)`` and its delete-one-group jackknife standard error (nan if a
        replicate is not finite)."""
        b = len(self.sums)
        if b < 2 or self.count - max(self.counts) < 2:
            return fn(self.stats()), math.nan
        replicates = np.array([fn(self.stats(leave_out)) for leave_out in range(b)])
        if not np.isfinite(replicates).all():
            return fn(self.stats()), math.nan
        return fn(self.stats()), math.sqrt(
            (b - 1) / b * ((replicates - replicates.mean()) ** 2).sum()
        )


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator > 0 else math.inf


def relative_variance(estimator: Moments, reference: Moments) -> tuple[float, float, bool]:
    """``tr Cov[g] / ‖E g‖²`` with ``‖E g‖²`` from ``reference`` (an independent estimator
    with the same mean, or ``estimator`` itself), its standard error, and whether ``‖E g‖²``
    was resolved (if not: the lower bound ``tr Cov / ‖mean‖²``)."""
    trace, _, _ = estimator.stats()
    _, mean_sq, mean = reference.stats()
    if mean_sq <= 0:
        return trace / float(mean @ mean), math.nan, False
    if estimator is reference:
        value, se = estimator.jackknife(lambda st: _ratio(st[0], st[1]))
        return value, se, True
    trace, trace_se = estimator.jackknife(lambda st: st[0])
    mean_sq, mean_sq_se = reference.jackknife(lambda st: st[1])
    value = trace / mean_sq
    return value, value * math.hypot(trace_se / trace, mean_sq_se / mean_sq), True


def cosine(a: Moments, b: Moments) -> float:
    """Cosine between the means of two independent estimators (bias-corrected norms; the
    inner product of independent means is unbiased)."""
    denominator = a.stats()[1] * b.stats()[1]
    if denominator <= 0:
        return math.nan
    return float(a.stats()[2] @ b.stats()[2]) / math.sqrt(denominator)


def _cosine(m: Moments, reference: Moments) -> str:
    if m is reference:
        return "-"
    value = cosine(m, reference)
    return "mean not resolved" if math.isnan(value) else f"{value:.3f}"


def _relative(value: tuple[float, float, bool]) -> str:
    rel, se, resolved = value
    if not resolved:
        return f">= {rel:.3g} (mean not resolved)"
    if math.isnan(se):
        return f"{rel:.3g}"
    return f"{rel:.3g} +- {se:.2g}"


# --------------------------------------------------------------------------- Pyro


def mlp(sizes: list[int], seed: int):
    """tanh MLP, Glorot-uniform weights, zero biases (the baseline network)."""
    import torch
    from torch import nn

    torch.manual_seed(seed)
    layers = []
    for i, (m, n) in enumerate(itertools.pairwise(sizes)):
        linear = nn.Linear(m, n)
        nn.init.xavier_uniform_(linear.weight)
        nn.init.zeros_(linear.bias)
        layers += [linear] if i == len(sizes) - 2 else [linear, nn.Tanh()]
    return nn.Sequential(*layers)


class Networks:
    """The sigmoid belief net of ``pyro_concrete.problems`` (200H~784V) and the baseline
    network, and the Pyro programs that use them."""

    def __init__(self, sbn, baseline) -> None:
        import pyro
        from pyro import poutine

        import pyro_concrete as pc

        self.sbn, self.baseline = sbn, baseline
        self.decoder, self.encoder = sbn.decoder[0], sbn.encoder[0]

        def baseline_guide(x):
            pyro.module("baseline", baseline)
            infer = {
                "baseline": {
                    "nn_baseline": lambda v: baseline(v).squeeze(-1),
                    "nn_baseline_input": x,
                }
            }
            config = poutine.infer_config(
                sbn.guide, lambda site: infer if site["type"] == "sample" else {}
            )
            return config(x)

        self.model = sbn.model
        self.relaxed_model = pc.relax(sbn.model, temperature=PRIOR_TEMPERATURE)
        self.relaxed_guide = pc.relax(sbn.guide, temperature=POSTERIOR_TEMPERATURE)
        self.score_guide = sbn.guide
        self.baseline_guide = baseline_guide

    def clone(self) -> "Networks":
        """Independent copies of the networks, with their own programs."""
        return Networks(copy.deepcopy(self.sbn), copy.deepcopy(self.baseline))

    def programs(self) -> dict[str, tuple[Callable, Callable, object]]:
        """estimator -> (model, guide, ELBO)."""
        from pyro.infer import Trace_ELBO, TraceGraph_ELBO

        return {
            CONCRETE: (self.relaxed_model, self.relaxed_guide, Trace_ELBO()),
            SCORE: (self.model, self.score_guide, TraceGraph_ELBO()),
            SCORE_BASELINE: (self.model, self.baseline_guide, TraceGraph_ELBO()),
        }

    def parameters(self) -> list:
        return [*self.sbn.parameters(), *self.baseline.parameters()]

    def encoder_gradient(self, model, guide, elbo, x) -> np.ndarray:
        """One single-sample estimate of d(-ELBO)/d(encoder parameters), flattened."""
        import torch

        for p in self.parameters():
            p.grad = None
        elbo.loss_and_grads(model, guide, x)
        return torch.cat([p.grad.reshape(-1) for p in self.encoder.parameters()]).double().numpy()

    def learning_signal(self, x):
        """Each image's ``log p(x, z) - log q(z | x)`` at ``z ~ q(z | x)``: the downstream
        cost that ``TraceGraph_ELBO`` multiplies the score by, and that ``nn_baseline``
        regresses on."""
        import pyro.distributions as dist
        import torch

        with torch.no_grad():
            q = dist.Bernoulli(logits=self.encoder(x))
            z = q.sample()
            log_lik = dist.Bernoulli(logits=self.decoder(z)).log_prob(x).sum(-1)
            return log_lik - LATENTS * math.log(2) - q.log_prob(z).sum(-1)

    def start_baseline(self, train) -> None:
        """The baseline's output bias at the mean learning signal (about -200 nats, far
        from the 0 of a fresh network)."""
        import torch

        with torch.no_grad():
            self.baseline[-1].bias.fill_(float(self.learning_signal(train[:512]).mean()))

    def baseline_r2(self, train, rng: np.random.Generator) -> float:
        """``1 - E[(f - b(x))^2] / Var[f]`` for the learning signal ``f``, on fresh images:
        the fraction of its variance that the baseline removes (0 for the constant mean,
        negative for a baseline offset from the mean)."""
        import torch

        x = train[rng.integers(0, len(train), 1024)]
        signal = self.learning_signal(x)
        with torch.no_grad():
            residual = signal - self.baseline(x).squeeze(-1)
        return 1 - float(residual.pow(2).mean() / signal.var())

    def fit_baseline(self, train, steps: int, rng: np.random.Generator) -> float:
        """Fit the baseline at the current decoder and encoder: ``start_baseline``, then
        ``steps`` Adam steps (lr ``BASELINE_LR``) of ``TraceGraph_ELBO``'s baseline loss on
        random minibatches, the other networks fixed.  Returns ``baseline_r2``."""
        import torch
        from pyro.infer import TraceGraph_ELBO

        self.start_baseline(train)
        optimizer = torch.optim.Adam(self.baseline.parameters(), lr=BASELINE_LR)
        elbo = TraceGraph_ELBO()
        for _ in range(steps):
            x = train[rng.integers(0, len(train), BATCH)]
            for p in self.parameters():
                p.grad = None
            elbo.loss_and_grads(self.model, self.baseline_guide, x)
            optimizer.step()
        return self.baseline_r2(train, rng)

    def local_expectation_gradient(self, x) -> np.ndarray:
        """One local-expectation estimate (Titsias & Lazaro-Gredilla 2015) of
        d(-discrete ELBO)/d(encoder parameters): for each latent ``j``, the expectation over
        ``z_j`` is exact given a sample of the others,
        ``d ELBO / d logit_j = E[sigma'(logit_j) (log p(x | z_j=1, z_-j) - log p(x | z_j=0, z_-j))]
        + d H(q_j) / d logit_j``; unbiased, with a far smaller variance than the score
        function, at 201 decoder passes per image.  Used as the reference gradient."""
        import torch
        import torch.nn.functional as F

        logits = self.encoder(x)
        with torch.no_grad():
            p = torch.sigmoid(logits)
            z = torch.bernoulli(p)
            batch, latents = z.shape
            flipped = z[:, None, :].repeat(1, latents, 1)
            diagonal = torch.arange(latents)
            flipped[:, diagonal, diagonal] = 1 - flipped[:, diagonal, diagonal]
            x_flipped = x[:, None, :].expand(batch, latents, x.shape[-1])
            log_lik = -F.binary_cross_entropy_with_logits(self.decoder(z), x, reduction="none").sum(
                -1
            )
            log_lik_flipped = -F.binary_cross_entropy_with_logits(
                self.decoder(flipped), x_flipped, reduction="none"
            ).sum(-1)
            one_minus_zero = torch.where(
                z.bool(), log_lik[:, None] - log_lik_flipped, log_lik_flipped - log_lik[:, None]
            )
            coefficient = p * (1 - p) * one_minus_zero
        entropy = torch.distributions.Bernoulli(logits=logits).entropy().sum()
        surrogate = (logits * coefficient).sum() + entropy  # the prior of z is constant
        grads = torch.autograd.grad(-surrogate, list(self.encoder.parameters()))
        return torch.cat([g.reshape(-1) for g in grads]).double().numpy()


def train_pyro(nets: Networks, estimator: str, train, batches: np.ndarray) -> float:
    """Adam steps of one estimator; returns the CPU seconds they took.  The baseline
    network, when used, learns at ``BASELINE_LR`` (Pyro's per-parameter optimiser options)."""
    import pyro
    from pyro.infer import SVI
    from pyro.optim import Adam

    model, guide, elbo = nets.programs()[estimator]
    pyro.set_rng_seed(0)
    with pyro.get_param_store().scope():
        optimizer = Adam(lambda name: {"lr": BASELINE_LR if name.startswith("baseline") else LR})
        svi = SVI(model, guide, optimizer, elbo)
        start = time.process_time()
        for indices in batches:
            svi.step(train[indices])
        return time.process_time() - start


def chunk_bounds_pyro(nets: Networks, estimator: str, test, chunks: int, k: int) -> np.ndarray:
    """``discrete_bound`` per image, averaged within each equal chunk of ``test``."""
    import pyro

    import pyro_concrete as pc

    _, guide, _ = nets.programs()[estimator]
    pyro.set_rng_seed(1)
    size = len(test) // chunks
    with pyro.get_param_store().scope():
        return np.array(
            [
                pc.discrete_bound(nets.model, guide, test[i : i + size], num_samples=k) / size
                for i in range(0, size * chunks, size)
            ]
        )


# --------------------------------------------------------------------------- NumPyro


class NumPyroSBN:
    """The sigmoid belief net of ``numpyro_concrete.problems``, relaxed; parameters named
    ``{net}0_{w|b}{layer}``."""

    def __init__(self, pixel_logits: np.ndarray) -> None:
        import jax
        import jax.numpy as jnp
        from numpyro.infer import Trace_ELBO

        import numpyro_concrete as nc
        from numpyro_concrete.problems import SigmoidBeliefNet as NumPyroSigmoidBeliefNet

        net = NumPyroSigmoidBeliefNet(latents=(LATENTS,), hidden=HIDDEN, pixel_logits=pixel_logits)
        model = net.model
        guide = nc.relax(net.guide, temperature=POSTERIOR_TEMPERATURE)
        self.model, self.guide = model, guide
        self.relaxed_model = nc.relax(model, temperature=PRIOR_TEMPERATURE)
        elbo = Trace_ELBO()

        def loss(params, key, x):
            return elbo.loss(key, params, self.relaxed_model, guide, x)

        def encoder_moments(params, keys, x):
            """Sum of the encoder gradients over ``keys`` and the sum of their squared norms,
            flattened in torch's layout (weights ``(out, in)``) to compare with Pyro's."""
            grads = jax.vmap(jax.grad(loss), in_axes=(None, 0, None))(params, keys, x)
            flat = jnp.concatenate(
                [
                    (grads[name].transpose(0, 2, 1) if "_w" in name else grads[name]).reshape(
                        len(keys), -1
                    )
                    for name in self.encoder_names(params)
                ],
                1,
            )
            return flat.sum(0), (flat * flat).sum()

        self.encoder_moments = jax.jit(encoder_moments)
        self.loss = loss

    @staticmethod
    def encoder_names(params: dict) -> list[str]:
        """The encoder's parameter names in the order of ``torch``'s ``parameters()``."""
        layers = len(ENCODER_SIZES) - 1
        return [f"encoder0_{kind}{i}" for i in range(layers) for kind in ("w", "b")]

    @staticmethod
    def params_from(nets: Networks) -> dict:
        """The Pyro networks' current values, as NumPyro parameters (``x @ W``: transposed)."""
        import jax.numpy as jnp

        params = {}
        for name, net in (("decoder", nets.decoder), ("encoder", nets.encoder)):
            linears = [layer for layer in net if hasattr(layer, "weight")]
            for i, linear in enumerate(linears):
                params[f"{name}0_w{i}"] = jnp.asarray(linear.weight.detach().numpy().T)
                params[f"{name}0_b{i}"] = jnp.asarray(linear.bias.detach().numpy())
        return params


def numpyro_train_and_bound(sbn: NumPyroSBN, params0: dict, train, batches, test, b: Budget):
    """Train the NumPyro relaxed model from ``params0`` on ``batches``; chunk bounds."""
    import jax
    import jax.numpy as jnp
    import numpyro
    from numpyro.infer import SVI, Trace_ELBO

    import numpyro_concrete as nc

    svi = SVI(sbn.relaxed_model, sbn.guide, numpyro.optim.Adam(LR), Trace_ELBO())
    train_jax = jnp.asarray(train.numpy())
    state = svi.init(jax.random.PRNGKey(0), train_jax[batches[0]], init_params=params0)

    def run(state, indices):
        def step(state, idx):
            state, loss = svi.update(state, train_jax[idx])
            return state, loss

        return jax.lax.scan(step, state, indices)

    indices = jnp.asarray(batches)
    start = time.process_time()
    compiled = jax.jit(run).lower(state, indices).compile()
    compile_seconds = time.process_time() - start
    start = time.process_time()
    state, _ = jax.block_until_ready(compiled(state, indices))
    seconds = time.process_time() - start
    params = svi.get_params(state)
    size = len(test) // b.chunks
    test_jax = jnp.asarray(test.numpy())
    keys = jax.random.split(jax.random.PRNGKey(1), b.chunks)
    bounds = np.array(
        [
            nc.discrete_bound(
                key, sbn.model, sbn.guide, params, test_jax[i : i + size], num_samples=b.k
            )
            / size
            for key, i in zip(keys, range(0, size * b.chunks, size), strict=True)
        ]
    )
    return bounds, seconds, compile_seconds


# --------------------------------------------------------------------------- experiment


REFERENCE = "reference: local expectation (discrete ELBO)"


def variance_at_point(nets: Networks, x, b: Budget, sbn, seed: int) -> dict[str, Moments]:
    """``b.samples`` gradient samples of every estimator at the current values (the Pyro
    ones interleaved, so that their CPU times are comparable), and ``b.reference_samples``
    of the local-expectation reference."""
    import pyro
    import torch

    programs = nets.programs()
    moments = {name: Moments() for name in programs}
    pyro.set_rng_seed(seed)
    names = list(programs)
    per_group = math.ceil(b.samples / b.groups)
    with pyro.get_param_store().scope():
        for model, guide, elbo in programs.values():  # untimed: lazy initialisation
            nets.encoder_gradient(model, guide, elbo, x)
        for i in range(b.samples):
            shift = i % len(names)
            for name in names[shift:] + names[:shift]:
                model, guide, elbo = programs[name]
                start = time.process_time()
                g = nets.encoder_gradient(model, guide, elbo, x)
                moments[name].seconds += time.process_time() - start
                moments[name].add(i // per_group, g, float(g @ g))
    if sbn is not None:
        import jax
        import jax.numpy as jnp

        params = NumPyroSBN.params_from(nets)
        x_jax = jnp.asarray(x.numpy())
        np_moments = Moments()
        keys = jax.random.split(jax.random.PRNGKey(seed), b.samples)
        for group, first in enumerate(range(0, b.samples, per_group)):
            chunk = keys[first : first + per_group]
            total, square = jax.block_until_ready(sbn.encoder_moments(params, chunk, x_jax))
            np_moments.add(group, np.asarray(total, np.float64), float(square), len(chunk))
        moments[CONCRETE_NUMPYRO] = np_moments
    reference = Moments()
    torch.manual_seed(seed)
    reference_groups = max(1, min(b.groups, b.reference_samples // 2))
    for i in range(b.reference_samples):
        start = time.process_time()
        g = nets.local_expectation_gradient(x)
        reference.seconds += time.process_time() - start
        reference.add(i * reference_groups // b.reference_samples, g, float(g @ g))
    moments[REFERENCE] = reference
    return moments


def variance_rows(point: str, moments: dict[str, Moments], baseline_r2: float) -> list[list]:
    """Relative variance of each estimator; the score-function estimators' mean is the
    discrete-ELBO gradient, whose norm comes from the (independent) reference."""
    reference = moments[REFERENCE]
    relaxed = relative_variance(moments[CONCRETE], moments[CONCRETE])
    rows = []
    for name, m in moments.items():
        discrete = name in (SCORE, SCORE_BASELINE)
        rel = relative_variance(m, reference if discrete else m)
        ratio = relaxed[0] / rel[0] if relaxed[2] and rel[2] else math.nan
        seconds = m.seconds / m.count if m.seconds else math.nan
        work = ratio * (moments[CONCRETE].seconds / moments[CONCRETE].count) / seconds
        label = name + (f" (R^2 {baseline_r2:.2f})" if name == SCORE_BASELINE else "")
        rows.append(
            [
                label,
                point,
                m.count,
                _relative(rel),
                "reference" if discrete else "own mean",
                "-" if math.isnan(ratio) else f"{ratio:.3g}",
                "-" if math.isnan(work) else f"{work:.3g}",
                "-" if math.isnan(seconds) else f"{1e3 * seconds:.1f}",
                _cosine(m, reference),
            ]
        )
    return rows


def progress(what: str) -> None:
    print(f"  [{time.process_time():6.1f} CPU s] {what}", file=sys.stderr, flush=True)


def load(b: Budget):
    from pyro_concrete.datasets import load_binarized_mnist

    mnist = load_binarized_mnist()  # reads CONCRETE_MNIST
    rng = np.random.default_rng(0)
    train = mnist["train"]
    if b.train_images is not None:
        train = train[rng.permutation(len(train))[: b.train_images]]
    test = mnist["test"][rng.permutation(len(mnist["test"]))[: b.test_images]]
    return train, test


def main() -> None:
    options = parse_options(__doc__.splitlines()[0])
    quiet_library_warnings()
    import pyro
    import torch

    torch.distributions.Distribution.set_default_validate_args(False)
    pyro.enable_validation(False)
    module = import_numpyro_concrete()
    has_numpyro = not isinstance(module, str)
    if has_numpyro:
        import numpyro

        numpyro.enable_validation(False)
    b = budget(options)
    train, test = load(b)
    rng = np.random.default_rng(0)
    pixel_logits = train.mean(0).clamp(1e-3, 1 - 1e-3).logit()
    from pyro_concrete.problems import SigmoidBeliefNet

    torch.manual_seed(0)
    initial = Networks(
        SigmoidBeliefNet(latents=(LATENTS,), hidden=HIDDEN, pixel_logits=pixel_logits),
        mlp(BASELINE_SIZES, seed=1),
    )
    sbn = NumPyroSBN(pixel_logits.numpy()) if has_numpyro else None
    x_fixed = train[rng.permutation(len(train))[:BATCH]]

    # 1. variance at the initialisation and after a common Concrete warm-up
    nets = initial.clone()
    rows = []
    r2 = nets.fit_baseline(train, b.baseline_fit, rng)
    progress("variance at initialisation")
    rows += variance_rows("initialisation", variance_at_point(nets, x_fixed, b, sbn, 1), r2)
    warmup = rng.integers(0, len(train), (b.warmup, BATCH))
    train_pyro(nets, CONCRETE, train, warmup)
    r2 = nets.fit_baseline(train, b.baseline_fit, rng)
    progress(f"variance after {b.warmup} Concrete steps")
    point = f"after {b.warmup} Concrete steps"
    rows += variance_rows(point, variance_at_point(nets, x_fixed, b, sbn, 2), r2)

    # 2. held-out bound after the same number of steps from the same initialisation
    batches = rng.integers(0, len(train), (b.steps, BATCH))
    bounds, seconds = {}, {}
    for estimator in (CONCRETE, SCORE, SCORE_BASELINE):
        progress(f"training {estimator}")
        nets = initial.clone()
        if estimator == SCORE_BASELINE:
            nets.start_baseline(train)
        seconds[estimator] = train_pyro(nets, estimator, train, batches)
        bounds[estimator] = chunk_bounds_pyro(nets, estimator, test, b.chunks, b.k)
        if estimator == SCORE_BASELINE:
            final_r2 = nets.baseline_r2(train, rng)
    if sbn is not None and not options.fast:  # its compilations cost ~10 CPU s even when tiny
        progress(f"training {CONCRETE_NUMPYRO}")
        params0 = NumPyroSBN.params_from(initial)
        bounds[CONCRETE_NUMPYRO], seconds[CONCRETE_NUMPYRO], compile_seconds = (
            numpyro_train_and_bound(sbn, params0, train, batches, test, b)
        )

    print("## Gradient quality: sigmoid belief net on binarized MNIST\n")
    print(
        f"Model (200H~784V) of tutorial 04: {LATENTS} binary latents, tanh MLPs with two "
        f"hidden layers of {HIDDEN}; prior temperature {PRIOR_TEMPERATURE}, posterior "
        f"{POSTERIOR_TEMPERATURE:.3g}; minibatches of {BATCH}; Adam lr {LR}; float32, "
        "validation off. Gradients with respect to the encoder (guide) parameters "
        f"({sum(p.numel() for p in initial.encoder.parameters())} numbers).\n"
    )
    print(f"Environment: {environment(options, timing=False)}; clock: process CPU time.\n")
    if options.fast:
        print(
            "**--fast: a few hundred training images, tiny budgets, a smoke test of the "
            "script; these numbers mean nothing.**\n"
        )
    if not has_numpyro:
        print(f"{module}\n")
    print("### Relative variance of the encoder gradient, tr Cov[g] / ‖E g‖²\n")
    print(
        f"{b.samples} single-sample gradients per estimator (Pyro ones interleaved) and "
        f"{b.reference_samples} of the reference, on one fixed minibatch of {BATCH} training "
        f"images; +- jackknife standard error over {b.groups} groups. Lower is better. "
        "`‖E g‖² from`: the estimator's own mean (Concrete: the relaxed-ELBO gradient), or "
        "for the score-function rows, whose mean is the discrete-ELBO gradient, the "
        "independent local-expectation reference (an unbiased estimator of that gradient "
        "with a far smaller variance). `relaxed/this`: Concrete (Pyro)'s relative variance "
        "over this row's (< 1: Concrete's gradient is less noisy); `at equal CPU time` "
        "multiplies it by the ratio of CPU time per gradient (the variance of an average "
        "over the samples one CPU second buys). R^2: the fraction of the learning signal's "
        "variance that the baseline removes, on fresh images. Cosine: between this "
        "estimator's mean gradient and the discrete-ELBO gradient (the reference's mean), "
        "norms bias-corrected: how far Concrete's gradient (of the relaxed objective) points "
        "from the discrete objective's.\n"
    )
    headers = [
        "estimator",
        "parameters",
        "samples",
        "tr Cov / ‖E g‖²",
        "‖E g‖² from",
        "relaxed/this",
        "relaxed/this at equal CPU time",
        "CPU ms per gradient",
        "cosine with discrete-ELBO gradient",
    ]
    print(markdown_table(headers, rows))

    print(f"\n### Held-out bound after {b.steps} steps of each estimator\n")
    print(
        f"Same initialisation and minibatches; `discrete_bound(..., num_samples={b.k})` "
        f"(the importance-weighted bound L_{b.k} of the discrete model) on {len(test)} "
        f"random test images, in {b.chunks} chunks: mean per image +- standard error over "
        "chunks; the difference to Concrete (Pyro) is paired over the same chunks "
        "(> 0: this estimator's bound is lower, i.e. worse). Training CPU time relative to "
        "Concrete (Pyro); the NumPyro time excludes compiling the training loop "
        "(`jax.lax.scan` over `svi.update`), reported below the table. The baseline "
        f"network starts with its output bias at the mean learning signal and learns at lr "
        f"{BASELINE_LR}; after training it removes R^2 = {final_r2:.2f} of the learning "
        "signal's variance.\n"
    )
    reference = bounds[CONCRETE]
    bound_rows = []
    for name, values in bounds.items():
        diff = reference - values
        bound_rows.append(
            [
                name,
                b.steps,
                f"{-values.mean():.2f} +- {values.std(ddof=1) / math.sqrt(len(values)):.2f}",
                "-"
                if name == CONCRETE
                else f"{diff.mean():+.2f} +- {diff.std(ddof=1) / math.sqrt(len(diff)):.2f}",
                f"{seconds[name] / seconds[CONCRETE]:.2f}",
            ]
        )
    headers = [
        "estimator",
        "steps",
        f"test -L_{b.k} (nats/image)",
        "minus Concrete (Pyro), paired",
        "training CPU time / Concrete (Pyro)",
    ]
    print(markdown_table(headers, bound_rows))
    if options.fast and sbn is not None:
        print(f"\n(--fast: {CONCRETE_NUMPYRO} is trained only in the full run.)")
    if CONCRETE_NUMPYRO in bounds:
        print(
            f"\n(NumPyro: compiling the {b.steps}-step training loop took "
            f"{compile_seconds / seconds[CONCRETE]:.2f} x the CPU time of Concrete (Pyro)'s "
            "training.)"
        )
    progress("done")


if __name__ == "__main__":
    main()
