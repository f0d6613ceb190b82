"""NumPyro twin of :class:`bayesvae.models.ProdLDA`: the same model, guide and networks, written
with Equinox modules registered through ``numpyro.contrib.module.eqx_module``, trained by jitted
SVI with a whole epoch of minibatches inside one compiled ``lax.scan``.

The trained weights convert exactly into the Pyro model (:meth:`NumPyroProdLDA.to_pyro`), so
saving, loading, ``transform``, ``perplexity`` and the reports are shared with the Pyro backend.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

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

BN_MOMENTUM = 0.9  # Equinox's convention: running = 0.9 running + 0.1 batch (torch's 0.1)


def _networks(config: dict[str, Any], key: Any) -> tuple[Any, Any, Any, Any]:
    """Fresh (encoder, encoder state, decoder, decoder state) Equinox modules."""
    import equinox as eqx
    import jax

    V, K = config["vocab_size"], config["num_topics"]
    H, layers = config["hidden_dim"], config["num_hidden_layers"]
    dropout, kind = config["dropout"], config["batch_norm"]

    class Encoder(eqx.Module):
        hidden: list
        drop: eqx.nn.Dropout
        fc_loc: eqx.nn.Linear
        fc_logvar: eqx.nn.Linear
        bn_loc: Any
        bn_logvar: Any

        def __init__(self, key: Any) -> None:
            keys = jax.random.split(key, layers + 2)
            sizes = [V] + [H] * layers
            self.hidden = [
                eqx.nn.Linear(a, b, key=k)
                for a, b, k in zip(sizes[:-1], sizes[1:], keys[:layers], strict=True)
            ]
            self.drop = eqx.nn.Dropout(dropout)
            self.fc_loc = eqx.nn.Linear(H, K, key=keys[-2])
            self.fc_logvar = eqx.nn.Linear(H, K, key=keys[-1])
            self.bn_loc = _batch_norm(K, kind)
            self.bn_logvar = _batch_norm(K, kind)

        def __call__(self, bow: Any, state: Any, key: Any) -> Any:
            h = bow
            for layer in self.hidden:
                h = jax.nn.softplus(layer(h))
            h = self.drop(h, key=key)
            loc, state = self.bn_loc(self.fc_loc(h), state)
            log_var, state = self.bn_logvar(self.fc_logvar(h), state)
            return (loc, jax.numpy.exp(0.5 * log_var)), state

    class Decoder(eqx.Module):
        drop: eqx.nn.Dropout
        beta: eqx.nn.Linear
        bn: Any

        def __init__(self, key: Any) -> None:
            self.drop = eqx.nn.Dropout(dropout)
            self.beta = eqx.nn.Linear(K, V, use_bias=False, key=key)
            self.bn = _batch_norm(V, kind)

        def __call__(self, theta: Any, state: Any, key: Any) -> Any:
            logits, state = self.bn(self.beta(self.drop(theta, key=key)), state)
            return jax.nn.softmax(logits), state

    encoder_key, decoder_key, init_key = jax.random.split(key, 3)
    encoder, encoder_state = eqx.nn.make_with_state(Encoder)(encoder_key)
    decoder, decoder_state = eqx.nn.make_with_state(Decoder)(decoder_key)
    encoder, decoder = _glorot((encoder, decoder), init_key)
    return encoder, encoder_state, decoder, decoder_state


def _glorot(tree: Any, key: Any) -> Any:
    """Glorot-uniform weights and zero biases for every ``eqx.nn.Linear`` (the paper's code)."""
    import equinox as eqx
    import jax
    import jax.numpy as jnp

    def is_linear(node: Any) -> bool:
        return isinstance(node, eqx.nn.Linear)

    linears = [
        node for node in jax.tree_util.tree_leaves(tree, is_leaf=is_linear) if is_linear(node)
    ]
    keys = jax.random.split(key, len(linears))

    def reinit(node: Any, k: Any) -> Any:
        fan_out, fan_in = node.weight.shape
        bound = (6.0 / (fan_in + fan_out)) ** 0.5
        weight = jax.random.uniform(k, node.weight.shape, minval=-bound, maxval=bound)
        node = eqx.tree_at(lambda n: n.weight, node, weight)
        if node.bias is not None:
            node = eqx.tree_at(lambda n: n.bias, node, jnp.zeros_like(node.bias))
        return node

    replaced = iter([reinit(node, k) for node, k in zip(linears, keys, strict=True)])
    return jax.tree_util.tree_map(
        lambda node: next(replaced) if is_linear(node) else node, tree, is_leaf=is_linear
    )


def _batch_norm(size: int, kind: str) -> Any:
    """Equinox twin of :class:`bayesvae.models.prodlda.BatchNorm`."""
    import equinox as eqx
    import jax.numpy as jnp

    class ShiftedBatchNorm(eqx.Module):
        norm: eqx.nn.BatchNorm
        bias: Any

        def __init__(self) -> None:
            self.norm = eqx.nn.BatchNorm(
                size,
                axis_name="batch",
                eps=BN_EPS,
                channelwise_affine=kind == "affine",
                momentum=BN_MOMENTUM,
                mode="batch",
            )
            self.bias = jnp.zeros(size) if kind == "shift" else None

        def __call__(self, x: Any, state: Any) -> Any:
            out, state = self.norm(x, state)
            return (out + self.bias if self.bias is not None else out), state

    return ShiftedBatchNorm()


class NumPyroProdLDA:
    """ProdLDA on NumPyro + Equinox, with the constructor arguments of
    :class:`~bayesvae.models.ProdLDA` (same defaults) and the same queries.

    ``fit(bow, ...)`` trains by jitted SVI (``TraceMeanField_ELBO``, analytic KL) and returns
    the per-epoch history; ``to_pyro()`` gives the equivalent trained Pyro model.
    """

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
        self.history: list[dict[str, float]] = []

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
            keys = jax.random.split(numpyro.prng_key(), inputs.shape[0])
            batched = jax.vmap(net, in_axes=(0, None, 0), out_axes=(0, None), axis_name="batch")
            out, new_state = batched(inputs, holder["state"], keys)
            holder["state"] = new_state
            return out

        def model(bow: Any, num_data: int) -> None:
            net = eqx_module("decoder", decoder)
            holder = numpyro.primitives.mutable("decoder$state", {"state": decoder_state})
            with numpyro.plate("documents", num_data, subsample_size=bow.shape[0]):
                logtheta = numpyro.sample(
                    "logtheta", dist.Normal(prior_loc, prior_scale).to_event(1)
                )
                word_probs = run(net, holder, jax.nn.softmax(logtheta, -1))
                numpyro.sample(
                    "obs",
                    dist.Multinomial(total_count=bow.sum(-1), probs=word_probs),
                    obs=bow,
                )

        def guide(bow: Any, num_data: int) -> None:
            net = eqx_module("encoder", encoder)
            holder = numpyro.primitives.mutable("encoder$state", {"state": encoder_state})
            with numpyro.plate("documents", num_data, subsample_size=bow.shape[0]):
                loc, scale = run(net, holder, bow)
                numpyro.sample("logtheta", dist.Normal(loc, scale).to_event(1))

        return model, guide, {"encoder": encoder, "decoder": decoder}

    # ------------------------------------------------------------------ training
    def fit(
        self,
        bow: Any,
        *,
        epochs: int = 100,
        batch_size: int = 200,
        lr: float = 2e-3,
        betas: tuple[float, float] = (0.99, 0.999),
        seed: int = 0,
        progress: bool = False,
    ) -> NumPyroProdLDA:
        """Train on ``bow`` (N, V) for ``epochs``; each epoch reshuffles the documents into
        minibatches of ``batch_size`` (the last incomplete one dropped) and runs them all in one
        jitted ``lax.scan``. Returns ``self``; ``history`` has one row per epoch."""
        import jax
        import jax.numpy as jnp
        from numpyro.infer import SVI, TraceMeanField_ELBO
        from numpyro.optim import Adam
        from tqdm.auto import tqdm

        from bayesvae.data.validation import check_positive_int

        epochs = check_positive_int("epochs", epochs)
        batch_size = check_positive_int("batch_size", batch_size)
        counts = check_bow("bow", bow, self.vocab_size)
        if bool((counts.sum(-1) == 0).any()):
            raise ValueError("bow has empty documents; drop them before fitting.")
        data = jnp.asarray(counts.numpy())
        num_docs = data.shape[0]
        batch_size = min(batch_size, num_docs)
        num_batches = num_docs // batch_size
        init_key, run_key = jax.random.split(jax.random.PRNGKey(self.config["seed"] or 0))
        model, guide, self._modules = self._model_and_guide(init_key)
        svi = SVI(model, guide, Adam(lr, b1=betas[0], b2=betas[1]), TraceMeanField_ELBO())
        state = svi.init(jax.random.fold_in(run_key, seed), data[:batch_size], num_docs)

        def epoch_fn(state: Any, order: Any) -> Any:
            def step(carry: Any, index: Any) -> Any:
                return svi.update(carry, data[index], num_docs)

            return jax.lax.scan(step, state, order.reshape(num_batches, batch_size))

        epoch_fn = jax.jit(epoch_fn)
        rng = np.random.default_rng(seed)
        self.history = []
        bar = tqdm(range(epochs), disable=not progress, desc="numpyro prodlda")
        for epoch in bar:
            started = time.perf_counter()
            order = rng.permutation(num_docs)[: num_batches * batch_size]
            state, losses = epoch_fn(state, jnp.asarray(order))
            loss = float(losses.mean())  # one host sync per epoch
            if not np.isfinite(loss):
                raise FloatingPointError(f"the loss became NaN/inf in epoch {epoch + 1}.")
            seconds = time.perf_counter() - started
            self.history.append(
                {
                    "epoch": epoch + 1,
                    "train_elbo": -loss / num_docs,
                    "seconds": seconds,
                    "samples_per_s": num_batches * batch_size / seconds,
                }
            )
            bar.set_postfix(elbo=f"{-loss / num_docs:.1f}")
        self.params = svi.get_params(state)
        self.net_state = state.mutable_state
        self._pyro = None
        return self

    # ------------------------------------------------------------------ conversion and queries
    def _check_fitted(self) -> None:
        if self.params is None:
            raise RuntimeError("this NumPyroProdLDA is not fitted yet; call fit(bow) first.")

    def to_pyro(self) -> ProdLDA:
        """The equivalent trained :class:`~bayesvae.models.ProdLDA` (weights and batch-norm
        running statistics copied), for saving, ``transform`` and ``perplexity``."""
        import equinox as eqx
        import torch

        self._check_fitted()
        if getattr(self, "_pyro", None) is not None:
            return self._pyro
        encoder = eqx.combine(self.params["encoder$params"], self._modules["encoder"])
        decoder = eqx.combine(self.params["decoder$params"], self._modules["decoder"])
        encoder_state = self.net_state["encoder$state"]["state"]
        decoder_state = self.net_state["decoder$state"]["state"]
        model = ProdLDA(**self.config)

        def tensor(array: Any) -> torch.Tensor:
            return torch.as_tensor(np.array(array), dtype=torch.float32)

        def copy_linear(target: torch.nn.Linear, source: Any) -> None:
            target.weight.data.copy_(tensor(source.weight))
            if target.bias is not None:
                target.bias.data.copy_(tensor(source.bias))

        def copy_bn(target: Any, source: Any, state: Any) -> None:
            # Equinox keeps a zero-debiased moving average ("batch" mode): undo the bias
            norm = source.norm
            counter = int(np.asarray(state.get(norm.batch_counter)))
            hidden_mean, hidden_var = state.get(norm.batch_state_index)
            debias = 1.0 - norm.momentum**counter if counter else 1.0
            target.norm.running_mean.copy_(tensor(hidden_mean) / debias)
            target.norm.running_var.copy_(tensor(hidden_var) / debias)
            if target.norm.affine:
                target.norm.weight.data.copy_(tensor(norm.weight))
                target.norm.bias.data.copy_(tensor(norm.bias))
            if target.bias is not None:
                target.bias.data.copy_(tensor(source.bias))

        with torch.no_grad():
            for target, source in zip(model.encoder.hidden, encoder.hidden, strict=True):
                copy_linear(target, source)
            copy_linear(model.encoder.fc_loc, encoder.fc_loc)
            copy_linear(model.encoder.fc_logvar, encoder.fc_logvar)
            copy_bn(model.encoder.bn_loc, encoder.bn_loc, encoder_state)
            copy_bn(model.encoder.bn_logvar, encoder.bn_logvar, encoder_state)
            copy_linear(model.decoder.beta, decoder.beta)
            copy_bn(model.decoder.bn, decoder.bn, decoder_state)
        model.eval()
        self._pyro = model
        return model

    def topic_word_weights(self) -> np.ndarray:
        """The topic-word matrix beta ``(K, V)``."""
        self._check_fitted()
        return np.asarray(self.params["decoder$params"].beta.weight).T.copy()

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
