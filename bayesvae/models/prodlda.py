"""ProdLDA (Srivastava & Sutton, 2017, "Autoencoding Variational Inference for Topic Models"): an
amortized topic model with a logistic-normal approximation to the Dirichlet prior and a
product-of-experts decoder.

Generative model for a document with word counts ``bow: (V,)``::

    logtheta ~ Normal(mu(alpha), sigma(alpha))  # Laplace approx. of Dirichlet(alpha)
    theta = softmax(logtheta)                   # (K,) topic proportions
    bow ~ Multinomial(sum(bow), softmax(BN(beta^T dropout(theta))))  # beta: (K, V)

Guide: ``q(logtheta | bow) = Normal(BN(W_loc h), exp(BN(W_logvar h) / 2))``, with
``h = dropout(softplus(...softplus(W_1 bow)))``. ``BN`` is batch normalisation with a learned
shift but no scale, as in the paper's code; its defaults are alpha = 1, two hidden layers of
100 units, dropout 0.6 (keep probability 0.4), Glorot-uniform weights and zero biases.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import pyro
import pyro.distributions as dist
import torch
from torch import nn

from bayesvae.data.validation import check_bow, check_choice, check_number, check_positive_int
from bayesvae.models.base import PyroModel, seeded_init

__all__ = [
    "ProdLDA",
    "check_bow",
    "check_num_topics",
    "dirichlet_laplace_prior",
    "top_word_indices",
]


def dirichlet_laplace_prior(alpha: Any, num_topics: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation ``(K,)`` of the Laplace approximation, in the softmax basis, of
    a Dirichlet(``alpha``) (MacKay 1998; eq. 3 of the ProdLDA paper): ``mu_k = log a_k - mean(log
    a)``, ``sigma_k^2 = (1 / a_k)(1 - 2 / K) + sum_j (1 / a_j) / K^2``."""
    a = np.broadcast_to(np.asarray(alpha, dtype=np.float64), (num_topics,))
    if not np.all(a > 0):
        raise ValueError(f"alpha must be positive, got {alpha!r}.")
    mu = np.log(a) - np.log(a).mean()
    var = (1.0 / a) * (1 - 2.0 / num_topics) + (1.0 / a).sum() / num_topics**2
    return mu, np.sqrt(var)


def check_num_topics(num_topics: Any, vocab_size: int) -> int:
    """``2 <= K < V``."""
    if isinstance(num_topics, bool) or not isinstance(num_topics, (int, np.integer)):
        raise TypeError(f"num_topics must be an integer, got {num_topics!r}.")
    if num_topics < 2:
        raise ValueError(f"num_topics must be >= 2, got {num_topics}.")
    if num_topics >= vocab_size:
        raise ValueError(
            f"num_topics ({num_topics}) must be smaller than the vocabulary size ({vocab_size})."
        )
    return int(num_topics)


def top_word_indices(weights: Any, n: int) -> np.ndarray:
    """Indices ``(K, n)`` of the ``n`` largest entries of each row of ``weights`` (K, V)."""
    weights = np.asarray(weights)
    return np.argsort(-weights, axis=1, kind="stable")[:, :n]


BATCH_NORMS = ("shift", "affine", "plain")
BN_EPS = 1e-3  # the original TensorFlow code's batch_norm epsilon


class BatchNorm(nn.Module):
    """Batch normalisation over ``(B, C)`` in one of three forms: ``"shift"`` (a learned bias
    but no scale, like ``tf.contrib.layers.batch_norm``'s defaults in the paper's code),
    ``"affine"`` (scale and bias) or ``"plain"`` (neither)."""

    def __init__(self, size: int, kind: str) -> None:
        super().__init__()
        self.norm = nn.BatchNorm1d(size, eps=BN_EPS, affine=kind == "affine")
        self.bias = nn.Parameter(torch.zeros(size)) if kind == "shift" else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.norm(x)
        return out + self.bias if self.bias is not None else out


class Encoder(nn.Module):
    """``bow: (B, V)`` -> ``(loc, scale)`` each ``(B, K)``."""

    def __init__(
        self,
        vocab_size: int,
        num_topics: int,
        hidden: int,
        layers: int,
        dropout: float,
        batch_norm: str,
    ) -> None:
        super().__init__()
        sizes = [vocab_size] + [hidden] * layers
        self.hidden = nn.ModuleList(
            nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:], strict=True)
        )
        self.drop = nn.Dropout(dropout)
        self.fc_loc = nn.Linear(hidden, num_topics)
        self.fc_logvar = nn.Linear(hidden, num_topics)
        self.bn_loc = BatchNorm(num_topics, batch_norm)
        self.bn_logvar = BatchNorm(num_topics, batch_norm)

    def forward(self, bow: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = bow
        for layer in self.hidden:
            h = nn.functional.softplus(layer(h))
        h = self.drop(h)
        loc = self.bn_loc(self.fc_loc(h))
        log_var = self.bn_logvar(self.fc_logvar(h))
        return loc, (0.5 * log_var).exp()


class Decoder(nn.Module):
    """``theta: (B, K)`` -> word probabilities ``(B, V)`` (product of experts)."""

    def __init__(self, vocab_size: int, num_topics: int, dropout: float, batch_norm: str) -> None:
        super().__init__()
        self.drop = nn.Dropout(dropout)
        self.beta = nn.Linear(num_topics, vocab_size, bias=False)
        self.bn = BatchNorm(vocab_size, batch_norm)

    def forward(self, theta: torch.Tensor) -> torch.Tensor:
        flat = theta.reshape(-1, theta.shape[-1])  # batch norm wants (B, C): fold sample dims
        logits = self.bn(self.beta(self.drop(flat)))
        return nn.functional.softmax(logits, dim=-1).reshape(*theta.shape[:-1], -1)


class ProdLDA(PyroModel):
    """ProdLDA topic model: a Pyro model/guide pair over bags of words ``(N, V)``.

    Args:
        vocab_size: V, the number of words.
        num_topics: K, with ``2 <= K < V``.
        hidden_dim, num_hidden_layers: encoder MLP (softplus); the paper's 100 and 2.
        dropout: on the encoder's hidden output and on theta in the decoder; 0.6 as in the
            paper's code (keep probability 0.4).
        alpha: Dirichlet concentration (a number, or K numbers) approximated by the prior; 1.0 as
            in the paper's code.
        batch_norm: form of every batch norm: ``"shift"`` (a learned bias, no scale: the paper's
            code, whose ``tf.contrib.layers.batch_norm`` defaults to ``center=True,
            scale=False``), ``"affine"`` or ``"plain"``; epsilon 0.001 as there.
        vocabulary: the V words, in column order (for ``top_words``); kept in the config.
        vectorizer: settings of the CountVectorizer that built the vocabulary (for
            ``transform_texts``), as recorded by :func:`bayesvae.data.text.vectorize`.
        seed: initialises the networks.
    """

    max_plate_nesting: ClassVar[int] = 1
    default_elbo: ClassVar[str] = "meanfield"  # analytic KL, as in the paper
    local_plate: ClassVar[str] = "documents"

    def __init__(
        self,
        vocab_size: int,
        num_topics: int = 20,
        *,
        hidden_dim: int = 100,
        num_hidden_layers: int = 2,
        dropout: float = 0.6,
        alpha: float | Sequence[float] = 1.0,
        batch_norm: str = "shift",
        vocabulary: Sequence[str] | None = None,
        vectorizer: dict[str, Any] | None = None,
        seed: int | None = 0,
    ) -> None:
        vocab_size = check_positive_int("vocab_size", vocab_size)
        num_topics = check_num_topics(num_topics, vocab_size)
        hidden_dim = check_positive_int("hidden_dim", hidden_dim)
        num_hidden_layers = check_positive_int("num_hidden_layers", num_hidden_layers)
        dropout = check_number("dropout", dropout, low=0, high=1, high_open=True)
        check_choice("batch_norm", batch_norm, BATCH_NORMS)
        mu, sigma = dirichlet_laplace_prior(alpha, num_topics)
        if vocabulary is not None:
            vocabulary = [str(word) for word in vocabulary]
            if len(vocabulary) != vocab_size:
                raise ValueError(
                    f"vocabulary has {len(vocabulary)} words; vocab_size is {vocab_size}."
                )
        alpha_config = alpha if np.isscalar(alpha) else [float(a) for a in alpha]
        super().__init__(
            dict(
                vocab_size=vocab_size,
                num_topics=num_topics,
                hidden_dim=hidden_dim,
                num_hidden_layers=num_hidden_layers,
                dropout=float(dropout),
                alpha=alpha_config,
                batch_norm=batch_norm,
                vocabulary=vocabulary,
                vectorizer=vectorizer,
                seed=seed,
            )
        )
        self.vocab_size, self.num_topics = vocab_size, num_topics
        self.vocabulary = vocabulary
        with seeded_init(seed):
            self.encoder = Encoder(
                vocab_size, num_topics, hidden_dim, num_hidden_layers, dropout, batch_norm
            )
            self.decoder = Decoder(vocab_size, num_topics, dropout, batch_norm)
            for module in self.modules():  # Glorot-uniform weights, zero biases (paper's code)
                if isinstance(module, nn.Linear):
                    nn.init.xavier_uniform_(module.weight)
                    if module.bias is not None:
                        nn.init.zeros_(module.bias)
        self.register_buffer("prior_loc", torch.as_tensor(mu, dtype=torch.float32))
        self.register_buffer("prior_scale", torch.as_tensor(sigma, dtype=torch.float32))

    # ------------------------------------------------------------------ Pyro model and guide
    def model(self, bow: torch.Tensor, *, num_data: int | None = None) -> None:
        """``bow``: word counts ``(B, V)``, a minibatch of ``num_data`` documents."""
        pyro.module(f"{self.pyro_name}.decoder", self.decoder)
        with self.data_plate(bow, num_data, name=self.local_plate):
            logtheta = pyro.sample(
                "logtheta",
                dist.Normal(self.prior_loc, self.prior_scale).expand([self.num_topics]).to_event(1),
            )
            word_probs = self.decoder(nn.functional.softmax(logtheta, dim=-1))
            # Multinomial.log_prob does not use total_count; it only has to be a valid bound.
            total = int(bow.sum(-1).max()) if bow.numel() else 0
            pyro.sample(
                "obs",
                dist.Multinomial(total, word_probs, validate_args=False),
                obs=bow,
            )

    def guide(self, bow: torch.Tensor, *, num_data: int | None = None) -> None:
        pyro.module(f"{self.pyro_name}.encoder", self.encoder)
        with self.data_plate(bow, num_data, name=self.local_plate):
            loc, scale = self.encoder(bow)
            pyro.sample("logtheta", dist.Normal(loc, scale).to_event(1))

    def check_data(self, bow: Any) -> tuple[torch.Tensor]:
        """Validate a bag-of-words ``(N, V)`` and refuse documents without words."""
        tensor = check_bow("bow", bow, self.vocab_size)
        empty = int((tensor.sum(-1) == 0).sum())
        if empty:
            raise ValueError(
                f"bow has {empty} empty document(s) (no words in the vocabulary); drop them "
                "(bayesvae.data.text.vectorize does this and logs the count)."
            )
        return (tensor,)

    # ------------------------------------------------------------------ queries
    def topic_word_weights(self) -> np.ndarray:
        """The decoder's topic-word matrix beta ``(K, V)`` (unnormalised log-weights)."""
        return self.decoder.beta.weight.detach().cpu().numpy().T.copy()

    def topics(self) -> np.ndarray:
        """Topic-word distributions ``(K, V)``: ``softmax(beta_k)``, each row sums to 1."""
        return torch.softmax(torch.as_tensor(self.topic_word_weights()), dim=-1).numpy()

    def top_words(self, n: int = 10) -> list[list[str]]:
        """The ``n`` highest-weighted words of each topic (word indices as strings when the
        model has no vocabulary)."""
        n = check_positive_int("n", n)
        vocabulary = self.vocabulary or [str(i) for i in range(self.vocab_size)]
        return [
            [vocabulary[i] for i in row] for row in top_word_indices(self.topic_word_weights(), n)
        ]

    @torch.no_grad()
    def transform(self, bow: Any, *, batch_size: int = 2048) -> np.ndarray:
        """Document-topic proportions ``(N, K)`` of new documents: ``softmax`` of the guide's
        mean (dropout off, batch norm with its running statistics). Empty documents get the
        prior's proportions."""
        tensor = check_bow("bow", bow, self.vocab_size).to(self.device)
        was_training = self.training
        self.eval()
        try:
            out = [
                torch.softmax(self.encoder(chunk)[0], dim=-1) for chunk in tensor.split(batch_size)
            ]
        finally:
            self.train(was_training)
        return torch.cat(out).cpu().numpy()

    @torch.no_grad()
    def perplexity(
        self, bow: Any, *, num_samples: int = 10, batch_size: int = 2048, seed: int = 0
    ) -> float:
        """``exp(-sum_d ELBO_d / sum_d N_d)`` over documents with at least one word, the word
        likelihood taken per token (no multinomial coefficient, as in the paper). The ELBO is a
        lower bound on ``log p``, so this is an **upper bound** on the true perplexity.
        ``num_samples`` draws of ``q`` per document, averaged; the KL term is analytic."""
        tensor = check_bow("bow", bow, self.vocab_size).to(self.device)
        tensor = tensor[tensor.sum(-1) > 0]
        if len(tensor) == 0:
            raise ValueError("bow has no non-empty documents to evaluate.")
        prior = dist.Normal(self.prior_loc, self.prior_scale)
        generator = torch.Generator(device=tensor.device).manual_seed(seed)
        was_training = self.training
        self.eval()
        total_elbo = 0.0
        try:
            for chunk in tensor.split(batch_size):
                loc, scale = self.encoder(chunk)
                kl = torch.distributions.kl_divergence(dist.Normal(loc, scale), prior).sum(-1)
                noise = torch.randn(
                    (num_samples, *loc.shape), generator=generator, device=loc.device
                )
                theta = torch.softmax(loc + scale * noise, dim=-1)
                log_probs = torch.log(self.decoder(theta) + 1e-30)  # (S, B, V)
                recon = (chunk * log_probs).sum(-1).mean(0)
                total_elbo += float((recon - kl).sum())
        finally:
            self.train(was_training)
        return math.exp(-total_elbo / float(tensor.sum()))

    def transform_texts(self, documents: Sequence[str]) -> np.ndarray:
        """Document-topic proportions ``(N, K)`` for raw texts, vectorized with the model's own
        vocabulary and CountVectorizer settings."""
        from bayesvae.data.text import vectorize_with_vocabulary

        if self.vocabulary is None:
            raise ValueError("this model has no vocabulary; use transform(bow) instead.")
        bow = vectorize_with_vocabulary(documents, self.vocabulary, self.config["vectorizer"])
        return self.transform(bow)
