"""The semi-supervised VAE of Kingma et al. (2014), "M2": the label is a latent variable, observed
for the labelled rows and summed out for the others.

Generative model: ``y ~ Categorical(1/C)``, ``z ~ N(0, I)``, ``x | y, z ~ p(x | decoder(z, y))``.
Guide: ``q(y | x)`` (a classifier network) and ``q(z | x, y)`` (the conditional encoder).

One site ``y`` serves both kinds of row. Its guide distribution is the classifier for an
unlabelled row and a point mass on the label for a labelled one, and ``TraceEnum_ELBO`` sums
``y`` out exactly (the site is enumerated in the guide). So a labelled row contributes the
labelled bound ``log p(x, y) >= E_q(z|x,y)[log p(x|y,z) + log p(y) + log p(z) - log q(z|x,y)]``
and an unlabelled row ``sum_y q(y|x) [same] + H(q(y|x))``, both in the one plate ``data`` with the
minibatch factor ``N / B``. As in the paper, the classifier also gets a direct term
``classifier_weight * log q(y | x)`` on labelled rows, a ``pyro.factor`` in the model (so the
objective is the paper's ``J^alpha``, no longer a bound on ``log p(x)``).

Unlabelled rows carry the label :data:`UNLABELLED` (``-1``) or NaN.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyro
import pyro.distributions as dist
import torch
from pyro import poutine

from bayesvae.data.validation import check_non_negative_number, check_positive_int
from bayesvae.models.cvae import ConditionalVAE
from bayesvae.models.vae import _mlp

__all__ = ["SemiSupervisedVAE", "UNLABELLED", "partial_labels"]

#: the label of a row whose class is unknown
UNLABELLED = -1
#: guide logit of the classes a labelled row does not have (a point mass on its label whose
#: enumerated weight is exactly 0 in float32, and whose log density stays finite)
_PINNED = -1e4


def partial_labels(name: str, y: Any, num_classes: int, n: int) -> torch.Tensor:
    """Labels ``(N,)`` in ``[0, num_classes)``, with ``-1`` or NaN for unlabelled rows, as an
    int64 tensor (unlabelled: ``-1``). Raises ``ValueError``/``TypeError`` naming ``name``."""
    array = y.detach().cpu().numpy() if isinstance(y, torch.Tensor) else np.asarray(y)
    if array.dtype == object or not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
        raise TypeError(
            f"{name} must hold integer labels (-1 or NaN: unlabelled), got {array.dtype}."
        )
    if array.ndim != 1:
        raise ValueError(f"{name} must be labels (N,), got shape {array.shape}.")
    if len(array) != n:
        raise ValueError(f"{name} has {len(array)} labels for {n} data rows; expected {n}.")
    array = array.astype(float)
    missing = np.isnan(array)
    if np.isinf(array).any():
        raise ValueError(f"{name} contains infinite values.")
    known = array[~missing]
    if known.size and not np.all(np.equal(np.mod(known, 1), 0)):
        raise TypeError(f"{name} must hold whole-number class labels.")
    labels = np.where(missing, UNLABELLED, array).astype(np.int64)
    bad = (labels < UNLABELLED) | (labels >= num_classes)
    if bad.any():
        raise ValueError(
            f"{name} labels must lie in [0, {num_classes - 1}] or be -1/NaN (unlabelled), got "
            f"{sorted(set(labels[bad].tolist()))[:5]}."
        )
    return torch.from_numpy(labels)


class SemiSupervisedVAE(ConditionalVAE):
    """M2 semi-supervised VAE as a Pyro model/guide pair ``model(x, y)``, ``guide(x, y)``
    (sites ``y`` (enumerated), ``z``, ``x``, and the factor ``classification``).

    Args:
        input_shape: size ``D`` of one data point (vector data; images are flattened).
        num_classes: number of label values ``C``.
        classifier_weight: weight of ``log q(y | x)`` on each labelled row (the paper's
            ``alpha`` is ``0.1 N`` on the mean over labelled rows, i.e. ``0.1 N / N_labelled``
            per row: about 8 for 600 labels among 50,000 images).
        classifier_hidden: widths of the classifier's hidden layers (default: ``hidden_dims``).
        **options: the other :class:`~bayesvae.models.VAE` options (latent_dim, hidden_dims,
            likelihood, activation, beta, seed); the encoder is an MLP.

    Training data are ``(x, y)`` with ``y = -1`` (or NaN) for unlabelled rows:
    ``bayesvae.fit(m2, (x, y))``; the default objective is ``"enum"``. Queries:
    ``classify(x)`` and ``predict_proba(x)`` (``q(y | x)``), ``sample(n, y=)`` (a class, or
    classes drawn from the prior), ``log_likelihood(x)`` (``log p(x)``, ``y`` summed out) or
    ``log_likelihood(x, y)`` (``log p(x | y)``), and every conditional-VAE query, where a missing
    label is the classifier's guess.
    """

    default_elbo = "enum"
    supported_elbos = ("enum",)
    supported_elbos_reason = (
        "the label y of unlabelled rows must be summed out by enumeration (TraceEnum_ELBO)."
    )

    def __init__(
        self,
        input_shape: int | Sequence[int],
        *,
        num_classes: int,
        classifier_weight: float = 10.0,
        classifier_hidden: Sequence[int] | None = None,
        **options: Any,
    ) -> None:
        if options.get("encoder", "mlp") != "mlp":
            raise ValueError("SemiSupervisedVAE uses an MLP encoder; flatten images to vectors.")
        if options.get("flows", 0):
            raise ValueError("SemiSupervisedVAE has no flow guide; use flows=0.")
        weight = check_non_negative_number("classifier_weight", classifier_weight)
        super().__init__(input_shape, num_classes=num_classes, **options)
        hidden = tuple(
            self.config["hidden_dims"] if classifier_hidden is None else classifier_hidden
        )
        hidden = tuple(check_positive_int("classifier_hidden", h) for h in hidden)
        self.classifier_weight = float(weight)
        self.config.update(classifier_weight=self.classifier_weight, classifier_hidden=list(hidden))
        seed = self.config["seed"]
        with torch.random.fork_rng(devices=[]):
            if seed is not None:
                torch.manual_seed(seed + 1)
            self.classifier = _mlp(
                [math.prod(self.input_shape), *hidden, self.num_classes], self.config["activation"]
            )

    # ----------------------------------------------------------------------------- Pyro program
    def classifier_logits(self, x: torch.Tensor) -> torch.Tensor:
        """``q(y | x)`` logits: ``x: (B, D)`` -> ``(B, C)``."""
        return self.classifier(x)

    def _label_guide(self, x: torch.Tensor, y: torch.Tensor) -> dist.Categorical:
        """``q(y | x)`` for unlabelled rows, a point mass on the label for labelled ones."""
        logits = self.classifier_logits(x)
        pinned = torch.full_like(logits, _PINNED).scatter(-1, y.clamp(min=0)[:, None], 0.0)
        return dist.Categorical(logits=torch.where((y >= 0)[:, None], pinned, logits))

    def _context_of(self, label: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """``x`` and the one-hot ``label`` broadcast together (the label may carry an enumeration
        dim on the left)."""
        onehot = torch.nn.functional.one_hot(label, self.num_classes).to(x.dtype)
        batch = torch.broadcast_shapes(onehot.shape[:-1], x.shape[:-1])
        return x.expand(*batch, x.shape[-1]), onehot.expand(*batch, self.num_classes)

    def model(
        self, x: torch.Tensor, y: torch.Tensor, *, num_data: int | None = None
    ) -> torch.Tensor:
        """``x: (B, D)``, ``y: (B,)`` int64 labels (-1: unlabelled); ``num_data`` as in
        :meth:`VAE.model`."""
        pyro.module(f"{self.pyro_name}.decoder", self.decoder)
        prior = torch.full((self.num_classes,), -math.log(self.num_classes), device=x.device)
        with self.data_plate(x, num_data):
            label = pyro.sample("y", dist.Categorical(logits=prior))
            with poutine.scale(scale=self.beta):
                z = pyro.sample("z", self.prior((x.shape[0],), x.device))
            _, onehot = self._context_of(label, x)
            observed = pyro.sample("x", self.observation_dist(self.decoder(z, onehot)), obs=x)
            if self.classifier_weight:
                labelled = y >= 0
                log_q = dist.Categorical(logits=self.classifier_logits(x)).log_prob(y.clamp(min=0))
                pyro.factor(
                    "classification", self.classifier_weight * torch.where(labelled, log_q, 0.0)
                )
            return observed

    def guide(
        self, x: torch.Tensor, y: torch.Tensor, *, num_data: int | None = None
    ) -> torch.Tensor:
        """``q(y | x) q(z | x, y)``; same arguments as :meth:`model`."""
        pyro.module(f"{self.pyro_name}.encoder", self.encoder)
        pyro.module(f"{self.pyro_name}.classifier", self.classifier)
        with self.data_plate(x, num_data):
            label = pyro.sample("y", self._label_guide(x, y), infer={"enumerate": "parallel"})
            # x (B, D) against the enumerated label (C, 1, C): the encoder's first layer reads
            # x once, not once per class
            onehot = torch.nn.functional.one_hot(label, self.num_classes).to(x.dtype)
            with poutine.scale(scale=self.beta):
                return pyro.sample("z", dist.Normal(*self.encoder(x, onehot)).to_event(1))

    # ------------------------------------------------------------------------------ validation
    def check_data(self, x: Any, *rest: Any) -> tuple[torch.Tensor, ...]:
        """``(x, y)`` -> ``(x, labels)``: ``x`` as for the VAE, ``y`` integer labels ``(N,)`` in
        ``[0, num_classes)`` with ``-1``/NaN for unlabelled rows (``x`` alone: all unlabelled)."""
        if len(rest) > 1:
            raise ValueError(
                f"SemiSupervisedVAE takes data (x, y) with y = -1 for unlabelled rows; got "
                f"{1 + len(rest)} arrays."
            )
        x = self._check_x("x", x)
        if not rest:
            return x, torch.full((x.shape[0],), UNLABELLED, dtype=torch.int64)
        return x, partial_labels("y", rest[0], self.num_classes, x.shape[0])

    def _partial(self, x: torch.Tensor, y: Any) -> torch.Tensor:
        """Labels ``(N,)`` for ``x`` from ``y`` (None: all missing; a class: all that class;
        per row, -1/NaN missing)."""
        if y is None:
            return torch.full((x.shape[0],), UNLABELLED, dtype=torch.int64)
        if isinstance(y, (int, np.integer)) and not isinstance(y, bool):
            y = np.full(x.shape[0], int(y))
        return partial_labels("y", y, self.num_classes, x.shape[0])

    def _labels_for(self, x: torch.Tensor, y: Any) -> torch.Tensor:
        """One-hot labels ``(N, C)`` for ``x``: the given ones, the classifier's guess where
        missing."""
        labels = self._partial(x, y)
        missing = labels < 0
        if missing.any():
            labels = labels.clone()
            labels[missing] = self.classify(x[missing])
        return torch.nn.functional.one_hot(labels, self.num_classes).float().to(self.device)

    # --------------------------------------------------------------------------------- queries
    @torch.no_grad()
    def predict_proba(self, x: Any, *, batch_size: int = 1024) -> torch.Tensor:
        """``q(y | x)``: ``x: (N, D)`` -> class probabilities ``(N, C)`` (on the CPU)."""
        x = self._check_x("x", x)
        parts = [
            torch.softmax(self.classifier_logits(batch), -1).cpu()
            for batch, _ in self._batches(x, None, check_positive_int("batch_size", batch_size))
        ]
        return torch.cat(parts)

    @torch.no_grad()
    def classify(self, x: Any, *, batch_size: int = 1024) -> torch.Tensor:
        """The most probable class under ``q(y | x)``: ``(N,)`` int64 (on the CPU)."""
        return self.predict_proba(x, batch_size=batch_size).argmax(-1)

    @torch.no_grad()
    def encode(
        self, x: Any, y: Any = None, *, batch_size: int = 1024
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``q(z | x, y)``: ``(loc, scale)``, each ``(N, latent_dim)``; a missing ``y`` (None,
        or -1 per row) is the classifier's guess."""
        x = self._check_x("x", x)
        context = self._labels_for(x, y)
        parts = [self.encoder(*batch) for batch in self._batches(x, context, batch_size)]
        return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])

    @torch.no_grad()
    def decode(self, z: Any, y: Any = None) -> torch.Tensor:
        """Mean of ``p(x | z, y)``: ``z: (N, latent_dim)``; ``y`` a class or ``(N,)`` classes
        (None: classes drawn from the uniform prior)."""
        if y is None:
            y = torch.randint(self.num_classes, (self._check_z(z).shape[0],))
        return super().decode(z, y)

    @torch.no_grad()
    def reconstruct(self, x: Any, y: Any = None, *, batch_size: int = 1024) -> torch.Tensor:
        """Decode the posterior mean of ``q(z | x, y)`` with ``y`` (the guess where missing)."""
        x = self._check_x("x", x)
        context = self._labels_for(x, y)
        loc, _ = self.encode(x, context.argmax(-1), batch_size=batch_size)
        return self._mean(self.decoder(loc, context))

    def _per_row(self, x: Any, y: Any, conditional: Any, marginal: Any) -> torch.Tensor:
        """``conditional(x_l, labels_l)`` for labelled rows and ``marginal(x_u)`` for the
        others, put back in row order ``(N,)``."""
        x = self._check_x("x", x)
        labels = self._partial(x, y)
        missing = labels < 0
        out = torch.empty(x.shape[0])
        if (~missing).any():
            out[~missing] = conditional(x[~missing], labels[~missing])
        if missing.any():
            out[missing] = marginal(x[missing])
        return out

    @torch.no_grad()
    def log_likelihood(
        self,
        x: Any,
        y: Any = None,
        *,
        num_samples: int = 5000,
        batch_size: int = 100,
        particle_batch: int = 500,
        seed: int | None = None,
        common_noise: bool = False,
    ) -> torch.Tensor:
        """Importance-sampled ``log p(x)`` per row, nats ``(N,)``, with ``y`` summed out exactly
        (``num_samples`` draws of ``q(z | x, y)`` for each class); rows with a label ``y`` get
        ``log p(x | y)`` (see :meth:`VAE.log_likelihood`)."""
        options = dict(
            num_samples=num_samples,
            batch_size=batch_size,
            particle_batch=particle_batch,
            common_noise=common_noise,
        )
        if seed is not None:
            pyro.set_rng_seed(seed)
        conditional = super().log_likelihood

        def marginal(rows: torch.Tensor) -> torch.Tensor:
            per_class = [conditional(rows, c, **options) for c in range(self.num_classes)]
            return torch.logsumexp(torch.stack(per_class), 0) - math.log(self.num_classes)

        return self._per_row(
            x, y, lambda rows, labels: conditional(rows, labels, **options), marginal
        )

    @torch.no_grad()
    def elbo(
        self,
        x: Any,
        y: Any = None,
        *,
        num_samples: int = 1,
        batch_size: int = 1024,
        seed: int | None = None,
        common_noise: bool = False,
    ) -> torch.Tensor:
        """The bound per row (β = 1, no classification term), nats ``(N,)``: for an unlabelled
        row ``sum_y q(y|x) [ELBO(x | y) + log p(y)] + H(q(y|x))``, a bound on ``log p(x)``; for a
        row with a label, ``ELBO(x | y)``, a bound on ``log p(x | y)``."""
        options = dict(num_samples=num_samples, batch_size=batch_size, common_noise=common_noise)
        if seed is not None:
            pyro.set_rng_seed(seed)
        conditional = super().elbo

        def marginal(rows: torch.Tensor) -> torch.Tensor:
            probs = self.predict_proba(rows)
            per_class = torch.stack(
                [conditional(rows, c, **options) for c in range(self.num_classes)], -1
            )
            log_prior = -math.log(self.num_classes)
            entropy = -(probs * probs.clamp(min=1e-30).log()).sum(-1)
            return (probs * (per_class + log_prior)).sum(-1) + entropy

        return self._per_row(
            x, y, lambda rows, labels: conditional(rows, labels, **options), marginal
        )
