"""NumPyro twin of :class:`bayesvae.models.ProdLDA`: the same model, guide and networks, written
with Equinox modules registered through ``numpyro.contrib.module.eqx_module``, trained by jitted
SVI with a whole epoch of minibatches inside one compiled ``lax.scan``.

The trained weights convert exactly into the Pyro model (:meth:`NumPyroProdLDA.to_pyro`), so
saving, loading, ``transform``, ``perplexity`` and the reports are shared with the Pyro backend.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from bayesvae.backends.numpyro.loop import SVISettings, TwinRecord, train
from bayesvae.models.prodlda import (
    BN_EPS,
    ProdLDA,
    check_bow,
    check_num_topics,
    dirichlet_laplace_prior,
    top_word_indices,
)

__all__ = ["NumPyroProdLDA"]

logger = logging.getLogger(__name__)

BN_MOMENTUM = 0.1  # torch's convention: running = 0.9 running + 0.1 batch


def _networks(config: dict[str, Any], key: Any) -> tuple[Any, Any, Any, Any]:
    """Fresh (encoder, encoder statistics, decoder, decoder statistics): Equinox modules working
    on whole minibatches (one matrix product per layer, batch norm over the batch axis), and the
    batch norms' running statistics as plain arrays (kept in ``numpyro.mutable`` state)."""
    import equinox as eqx
    import jax
    import jax.numpy as jnp

    V, K = config["vocab_size"], config["num_topics"]
    H, layers = config["hidden_dim"], config["num_hidden_layers"]
    dropout, kind = config["dropout"], config["batch_norm"]

    class Dense(eqx.Module):
        """``x @ weight.T + bias``; Glorot-uniform weights, zero bias (the paper's code)."""

        weight: Any
        bias: Any

        def __init__(self, n_in: int, n_out: int, key: Any, bias: bool = True) -> None:
            bound = (6.0 / (n_in + n_out)) ** 0.5
            self.weight = jax.random.uniform(key, (n_out, n_in), minval=-bound, maxval=bound)
            self.bias = jnp.zeros(n_out) if bias else None

        def __call__(self, x: Any) -> Any:
            out = x @ self.weight.T
            return out + self.bias if self.bias is not None else out

    class BatchNorm(eqx.Module):
        """Twin of :class:`bayesvae.models.prodlda.BatchNorm` (training mode: batch statistics;
        running mean and unbiased variance updated as torch does)."""

        weight: Any
        bias: Any

        def __init__(self, size: int) -> None:
            self.weight = jnp.ones(size) if kind == "affine" else None
            self.bias = jnp.zeros(size) if kind in ("affine", "shift") else None

        def __call__(self, x: Any, stats: tuple[Any, Any]) -> tuple[Any, tuple[Any, Any]]:
            mean, var = x.mean(0), x.var(0)
            out = (x - mean) * jax.lax.rsqrt(var + BN_EPS)
            if self.weight is not None:
                out = out * self.weight
            if self.bias is not None:
                out = out + self.bias
            n = x.shape[0]
            unbiased = var * n / max(n - 1, 1)
            running = (
                (1 - BN_MOMENTUM) * stats[0] + BN_MOMENTUM * mean,
                (1 - BN_MOMENTUM) * stats[1] + BN_MOMENTUM * unbiased,
            )
            return out, jax.tree_util.tree_map(jax.lax.stop_gradient, running)

    def drop(x: Any, key: Any) -> Any:
        if dropout == 0:
            return x
        keep = jax.random.bernoulli(key, 1.0 - dropout, x.shape)
        return jnp.where(keep, x / (1.0 - dropout), 0.0)

    class Encoder(eqx.Module):
        hidden: list
        fc_loc: Dense
        fc_logvar: Dense
        bn_loc: BatchNorm
        bn_logvar: BatchNorm

        def __init__(self, key: Any) -> None:
            keys = jax.random.split(key, layers + 2)
            sizes = [V] + [H] * layers
            self.hidden = [
                Dense(a, b, k) for a, b, k in zip(sizes[:-1], sizes[1:], keys[:layers], strict=True)
            ]
            self.fc_loc = Dense(H, K, keys[-2])
            self.fc_logvar = Dense(H, K, keys[-1])
            self.bn_loc, self.bn_logvar = BatchNorm(K), BatchNorm(K)

        def __call__(self, bow: Any, stats: dict[str, Any], key: Any) -> Any:
            h = bow
            for layer in self.hidden:
                h = jax.nn.softplus(layer(h))
            h = drop(h, key)
            loc, loc_stats = self.bn_loc(self.fc_loc(h), stats["loc"])
            log_var, var_stats = self.bn_logvar(self.fc_logvar(h), stats["logvar"])
            return (loc, jnp.exp(0.5 * log_var)), {"loc": loc_stats, "logvar": var_stats}

    class Decoder(eqx.Module):
        beta: Dense
        bn: BatchNorm

        def __init__(self, key: Any) -> None:
            self.beta = Dense(K, V, key, bias=False)
            self.bn = BatchNorm(V)

        def __call__(self, theta: Any, stats: dict[str, Any], key: Any) -> Any:
            logits, bn_stats = self.bn(self.beta(drop(theta, key)), stats["bn"])
            return jax.nn.softmax(logits, -1), {"bn": bn_stats}

    def fresh(size: int) -> tuple[Any, Any]:
        return jnp.zeros(size), jnp.ones(size)  # torch's initial running statistics

    encoder_key, decoder_key = jax.random.split(key)
    return (
        Encoder(encoder_key),
        {"loc": fresh(K), "logvar": fresh(K)},
        Decoder(decoder_key),
        {"bn": fresh(V)},
    )


def _log_multinomial_coefficient(bow: np.ndarray) -> np.ndarray:
    """``log(N_d! / prod_w n_dw!)`` for each row of ``bow`` (N, V): ``(N,)``."""
    from scipy.special import gammaln

    return (gammaln(bow.sum(-1) + 1) - gammaln(bow + 1).sum(-1)).astype(np.float32)


class NumPyroProdLDA(TwinRecord):
    """ProdLDA on NumPyro + Equinox, with the constructor arguments of
    :class:`~bayesvae.models.ProdLDA` (same defaults) and the same queries.

    ``fit(bow, settings)`` trains by jitted SVI (``TraceMeanField_ELBO``, analytic KL) and
    returns the twin, its ``history`` filled; ``to_pyro()`` gives the equivalent trained Pyro
    model.
    """

    #: objectives :meth:`fit` trains with (``bayesvae.fit(backend="numpyro")`` refuses others)
    supported_elbos: tuple[str, ...] = ("trace", "meanfield")
    #: what :meth:`fit` trains with when given no settings: the ProdLDA paper's code's
    default_settings = SVISettings(epochs=100, batch_size=200, lr=2e-3, betas=(0.99, 0.999))

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
        super().__init__()
        # the Pyro model validates every argument and records the config
        reference = ProdLDA(
            vocab_size,
            num_topics,
            hidden_dim=hidden_dim,
            num_hidden_layers=num_hidden_layers,
            dropout=dropout,
            alpha=alpha,
            batch_norm=batch_norm,
            vocabulary=vocabulary,
            vectorizer=vectorizer,
            seed=seed,
        )
        self.config = dict(reference.config)
        self.vocab_size, self.num_topics = vocab_size, check_num_topics(num_topics, vocab_size)
        self.vocabulary = reference.vocabulary
        self.params: dict[str, Any] | None = None
        self.net_state: dict[str, Any] | None = None
        self._pyro: ProdLDA | None = None  # the trained Pyro model, built on first use

    # ------------------------------------------------------------------ model and guide
    def _model_and_guide(self, key: Any) -> tuple[Any, Any, dict[str, Any]]:
        import jax
        import jax.numpy as jnp
        import numpyro
        import numpyro.distributions as dist
        from numpyro.contrib.module import eqx_module

        encoder, encoder_state, decoder, decoder_state = _networks(self.config, key)
        mu, sigma = dirichlet_laplace_prior(self.config["alpha"], self.num_topics)
        prior_loc, prior_scale = jnp.asarray(mu, jnp.float32), jnp.asarray(sigma, jnp.float32)

        def run(net: Any, holder: dict[str, Any], inputs: Any) -> Any:
            out, holder["stats"] = net(inputs, holder["stats"], numpyro.prng_key())
            return out

        def documents(batch: Any, num_data: int) -> Any:
            # a minibatch of rows already chosen on the host: scale it to the corpus instead of
            # letting the plate draw fresh subsample indices every step
            return numpyro.handlers.scale(scale=num_data / batch.shape[0])

        def model(bow: Any, log_coef: Any, num_data: int) -> None:
            """``log_coef``: each document's log multinomial coefficient, computed once."""
            net = eqx_module("decoder", decoder)
            holder = numpyro.primitives.mutable("decoder$stats", {"stats": decoder_state})
            with documents(bow, num_data), numpyro.plate("documents", bow.shape[0]):
                logtheta = numpyro.sample(
                    "logtheta", dist.Normal(prior_loc, prior_scale).to_event(1)
                )
                word_probs = run(net, holder, jax.nn.softmax(logtheta, -1))
                # = Multinomial(N_d, word_probs).log_prob(bow), without recomputing the
                # coefficient's log-gamma terms over all (B, V) entries at every step
                log_lik = log_coef + (bow * jnp.log(word_probs + 1e-30)).sum(-1)
                numpyro.factor("obs", log_lik)

        def guide(bow: Any, log_coef: Any, num_data: int) -> None:
            net = eqx_module("encoder", encoder)
            holder = numpyro.primitives.mutable("encoder$stats", {"stats": encoder_state})
            with documents(bow, num_data), numpyro.plate("documents", bow.shape[0]):
                loc, scale = run(net, holder, bow)
                numpyro.sample("logtheta", dist.Normal(loc, scale).to_event(1))

        return model, guide, {"encoder": encoder, "decoder": decoder}

    # ------------------------------------------------------------------ training
    def fit(
        self,
        bow: Any,
        val: Any = None,
        settings: SVISettings | None = None,
        *,
        elbo: str = "meanfield",
        dynamic_binarization: bool = False,
    ) -> NumPyroProdLDA:
        """Train on ``bow`` (N, V) as ``settings`` say (:attr:`default_settings` when
        ``None``); each epoch reshuffles the documents into minibatches (the last incomplete
        one dropped) and runs them all in one jitted ``lax.scan``. ``val`` (a bag of words)
        gets a one-sample ELBO per epoch. The objective is ``TraceMeanField_ELBO`` (``elbo``
        must be ``"meanfield"`` or ``"trace"``; both are the analytic-KL bound here). Returns
        ``self``; ``history`` has one row per epoch."""
        import jax
        import jax.numpy as jnp
        from numpyro.infer import TraceMeanField_ELBO

        if dynamic_binarization:
            raise ValueError("ProdLDA models word counts; dynamic binarization does not apply.")
        if elbo not in self.supported_elbos:
            raise ValueError(f"the NumPyro ProdLDA trains with 'meanfield', not {elbo!r}.")
        settings = self.default_settings if settings is None else settings
        counts = check_bow("bow", bow, self.vocab_size)
        if bool((counts.sum(-1) == 0).any()):
            raise ValueError("bow has empty documents; drop them before fitting.")
        val_arrays = None
        if val is not None:
            val_counts = check_bow("val", val, self.vocab_size).numpy()
            val_arrays = (
                jnp.asarray(val_counts),
                jnp.asarray(_log_multinomial_coefficient(val_counts)),
            )
        init_key, run_key = jax.random.split(jax.random.PRNGKey(self.config["seed"] or 0))
        model, guide, self._modules = self._model_and_guide(init_key)
        run = train(
            model,
            guide,
            TraceMeanField_ELBO(),
            (
                jnp.asarray(counts.numpy()),
                jnp.asarray(_log_multinomial_coefficient(counts.numpy())),
            ),
            settings,
            init_key=jax.random.fold_in(run_key, settings.seed),
            key=run_key,
            val=val_arrays,
            desc="numpyro prodlda",
        )
        self.params = self.keep(run).params
        self.net_state = run.state.mutable_state
        self._pyro = None
        return self

    # ------------------------------------------------------------------ conversion and queries
    def _check_fitted(self) -> None:
        if self.params is None:
            raise RuntimeError("this NumPyroProdLDA is not fitted yet; call fit(bow) first.")

    def to_pyro(self) -> ProdLDA:
        """The equivalent trained :class:`~bayesvae.models.ProdLDA` (weights and batch-norm
        running statistics copied), for saving, ``transform`` and ``perplexity``."""
        self._check_fitted()
        if self._pyro is None:
            self._pyro = self.export_to(ProdLDA(**self.config))
        return self._pyro

    def export_to(self, model: ProdLDA) -> ProdLDA:
        """Copy the trained weights and running statistics into the Pyro ``model`` (same
        configuration); returns it, in eval mode."""
        import equinox as eqx
        import torch

        self._check_fitted()
        if dict(model.config) != self.config:
            raise ValueError("export_to needs a ProdLDA with the same configuration as the twin.")
        encoder = eqx.combine(self.params["encoder$params"], self._modules["encoder"])
        decoder = eqx.combine(self.params["decoder$params"], self._modules["decoder"])
        encoder_stats = self.net_state["encoder$stats"]["stats"]
        decoder_stats = self.net_state["decoder$stats"]["stats"]

        def tensor(array: Any) -> torch.Tensor:
            return torch.as_tensor(np.array(array), dtype=torch.float32)

        def copy_linear(target: torch.nn.Linear, source: Any) -> None:
            target.weight.data.copy_(tensor(source.weight))
            if target.bias is not None:
                target.bias.data.copy_(tensor(source.bias))

        def copy_bn(target: Any, source: Any, stats: tuple[Any, Any]) -> None:
            target.norm.running_mean.copy_(tensor(stats[0]))
            target.norm.running_var.copy_(tensor(stats[1]))
            if target.norm.affine:
                target.norm.weight.data.copy_(tensor(source.weight))
                target.norm.bias.data.copy_(tensor(source.bias))
            elif target.bias is not None:
                target.bias.data.copy_(tensor(source.bias))

        with torch.no_grad():
            for target, source in zip(model.encoder.hidden, encoder.hidden, strict=True):
                copy_linear(target, source)
            copy_linear(model.encoder.fc_loc, encoder.fc_loc)
            copy_linear(model.encoder.fc_logvar, encoder.fc_logvar)
            copy_bn(model.encoder.bn_loc, encoder.bn_loc, encoder_stats["loc"])
            copy_bn(model.encoder.bn_logvar, encoder.bn_logvar, encoder_stats["logvar"])
            copy_linear(model.decoder.beta, decoder.beta)
            copy_bn(model.decoder.bn, decoder.bn, decoder_stats["bn"])
        model.eval()
        return model

    def topic_word_weights(self) -> np.ndarray:
        """The topic-word matrix beta ``(K, V)``."""
        self._check_fitted()
        return np.array(self.params["decoder$params"].beta.weight).T

    def topics(self) -> np.ndarray:
        """Topic-word distributions ``(K, V)``."""
        return self.to_pyro().topics()

    def top_words(self, n: int = 10) -> list[list[str]]:
        """The ``n`` highest-weighted words of each topic."""
        vocabulary = self.vocabulary or [str(i) for i in range(self.vocab_size)]
        return [
            [vocabulary[i] for i in row] for row in top_word_indices(self.topic_word_weights(), n)
        ]

    def transform(self, bow: Any) -> np.ndarray:
        """Document-topic proportions ``(N, K)`` (see :meth:`ProdLDA.transform`)."""
        return self.to_pyro().transform(bow)

    def perplexity(self, bow: Any, **kwargs: Any) -> float:
        """Upper bound on the perplexity from the ELBO (see :meth:`ProdLDA.perplexity`)."""
        return self.to_pyro().perplexity(bow, **kwargs)
