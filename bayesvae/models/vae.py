"""The amortized variational autoencoder: a Pyro model/guide pair with MLP or convolutional
networks, Bernoulli or Gaussian likelihood, and β-weighted KL.

Generative model: ``z ~ N(0, I)``, ``x | z ~ p(x | decoder(z))``.
Guide: ``q(z | x) = N(loc(x), diag(scale(x)^2))`` from the encoder.
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
from torch import nn

from bayesvae.data.validation import (
    as_float_tensor,
    check_choice,
    check_positive_int,
    check_unit_interval,
)
from bayesvae.models.base import PyroModel, seeded_init

__all__ = ["VAE", "ACTIVATIONS", "LIKELIHOODS", "ENCODERS"]

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "softplus": nn.Softplus,
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "leaky_relu": nn.LeakyReLU,
}
LIKELIHOODS = ("bernoulli", "gaussian")
ENCODERS = ("mlp", "conv")


def _mlp(sizes: Sequence[int], activation: str) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(sizes) - 2:
            layers.append(ACTIVATIONS[activation]())
    return nn.Sequential(*layers)


class MLPEncoder(nn.Module):
    """``x: (..., *input_shape)`` -> ``(loc, scale)``, each ``(..., latent_dim)``."""

    def __init__(
        self,
        input_dim: int,
        hidden_dims: Sequence[int],
        latent_dim: int,
        activation: str,
        event_dims: int,
    ) -> None:
        super().__init__()
        self.event_dims = event_dims
        self.net = _mlp([input_dim, *hidden_dims, 2 * latent_dim], activation)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        flat = x.flatten(start_dim=x.dim() - self.event_dims) if self.event_dims > 1 else x
        loc, log_var = self.net(flat).chunk(2, dim=-1)
        return loc, torch.exp(0.5 * log_var)


class MLPDecoder(nn.Module):
    """``z: (..., latent_dim)`` -> distribution parameters ``(..., *input_shape)``."""

    def __init__(
        self,
        latent_dim: int,
        hidden_dims: Sequence[int],
        input_shape: tuple[int, ...],
        activation: str,
    ) -> None:
        super().__init__()
        self.input_shape = input_shape
        self.net = _mlp([latent_dim, *reversed(hidden_dims), math.prod(input_shape)], activation)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        out = self.net(z)
        return out.reshape(*z.shape[:-1], *self.input_shape) if len(self.input_shape) > 1 else out


def _conv_sizes(size: int, layers: int) -> list[int]:
    sizes = [size]
    for _ in range(layers):
        sizes.append((sizes[-1] + 1) // 2)  # kernel 3, stride 2, padding 1
    return sizes


class ConvEncoder(nn.Module):
    """``x: (..., C, H, W)`` -> ``(loc, scale)``; stride-2 3x3 convolutions, then a linear head."""

    max_plate_nesting = 1
    #: plate of the amortized per-data-point latents (per-point PSIS diagnostics)
    local_plate = "data"

    def __init__(
        self,
        input_shape: tuple[int, int, int],
        channels: Sequence[int],
        hidden_dims: Sequence[int],
        latent_dim: int,
        activation: str,
    ) -> None:
        super().__init__()
        c, h, w = input_shape
        layers: list[nn.Module] = []
        for c_in, c_out in zip([c, *channels[:-1]], channels, strict=True):
            layers += [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), ACTIVATIONS[activation]()]
        self.conv = nn.Sequential(*layers)
        flat = channels[-1] * _conv_sizes(h, len(channels))[-1] * _conv_sizes(w, len(channels))[-1]
        self.head = _mlp([flat, *hidden_dims, 2 * latent_dim], activation)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        batch_shape = x.shape[:-3]
        features = self.conv(x.reshape(-1, *x.shape[-3:])).flatten(start_dim=1)
        loc, log_var = self.head(features).reshape(*batch_shape, -1).chunk(2, dim=-1)
        return loc, torch.exp(0.5 * log_var)


class ConvDecoder(nn.Module):
    """``z: (..., latent_dim)`` -> ``(..., C, H, W)``; a linear layer, then transposed convolutions
    that undo :class:`ConvEncoder` exactly (output padding chosen per layer)."""

    def __init__(
        self,
        latent_dim: int,
        hidden_dims: Sequence[int],
        input_shape: tuple[int, int, int],
        channels: Sequence[int],
        activation: str,
    ) -> None:
        super().__init__()
        c, h, w = input_shape
        hs, ws = _conv_sizes(h, len(channels)), _conv_sizes(w, len(channels))
        self.start_shape = (channels[-1], hs[-1], ws[-1])
        self.head = nn.Sequential(
            _mlp([latent_dim, *reversed(hidden_dims), math.prod(self.start_shape)], activation),
            ACTIVATIONS[activation](),
        )
        layers: list[nn.Module] = []
        outs = [c, *channels[:-1]]
        for i in reversed(range(len(channels))):
            pad_h = hs[i] - (2 * hs[i + 1] - 1)
            pad_w = ws[i] - (2 * ws[i + 1] - 1)
            layers.append(
                nn.ConvTranspose2d(
                    channels[i], outs[i], 3, stride=2, padding=1, output_padding=(pad_h, pad_w)
                )
            )
            if i > 0:
                layers.append(ACTIVATIONS[activation]())
        self.deconv = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        batch_shape = z.shape[:-1]
        hidden = self.head(z.reshape(-1, z.shape[-1])).reshape(-1, *self.start_shape)
        out = self.deconv(hidden)
        return out.reshape(*batch_shape, *out.shape[1:])


class VAE(PyroModel):
    """Amortized VAE as a Pyro model/guide pair.

    Args:
        input_shape: shape of one data point: ``D`` (or ``(D,)``) for vectors, ``(C, H, W)`` for
            images. Data passed to :meth:`model` are ``(N, *input_shape)``.
        latent_dim: size of ``z``.
        hidden_dims: widths of the hidden layers of the encoder (the decoder mirrors them).
        encoder: ``"mlp"`` or ``"conv"`` (the decoder matches; ``"conv"`` needs ``(C, H, W)``).
        conv_channels: channels of the stride-2 convolutions (``"conv"`` only).
        likelihood: ``"bernoulli"`` (decoder outputs logits; data in [0, 1], grey levels scored
            by cross-entropy) or ``"gaussian"``.
        gaussian_scale: fixed observation scale, or ``None`` to learn one per dimension.
        activation: one of :data:`ACTIVATIONS`.
        beta: weight of the KL term (β-VAE); applied with ``poutine.scale`` on ``z`` in both
            model and guide. ``beta=1`` is the standard ELBO.
        seed: seed for the initial weights (``None``: drawn from torch's global RNG).

    Example:
        >>> vae = VAE(64, latent_dim=2, hidden_dims=(32,))
        >>> svi = pyro.infer.SVI(vae.model, vae.guide, pyro.optim.Adam({"lr": 1e-3}),
        ...                      pyro.infer.Trace_ELBO())
    """

    max_plate_nesting = 1
    #: plate of the amortized per-data-point latents (per-point PSIS diagnostics)
    local_plate = "data"

    def __init__(
        self,
        input_shape: int | Sequence[int],
        *,
        latent_dim: int = 20,
        hidden_dims: Sequence[int] = (400,),
        encoder: str = "mlp",
        conv_channels: Sequence[int] = (32, 64),
        likelihood: str = "bernoulli",
        gaussian_scale: float | None = None,
        activation: str = "relu",
        beta: float = 1.0,
        seed: int | None = None,
    ) -> None:
        shape = _as_shape(input_shape)
        latent_dim = check_positive_int("latent_dim", latent_dim)
        hidden = tuple(check_positive_int("hidden_dims", h) for h in hidden_dims)
        check_choice("encoder", encoder, ENCODERS)
        check_choice("likelihood", likelihood, LIKELIHOODS)
        check_choice("activation", activation, tuple(ACTIVATIONS))
        if gaussian_scale is not None and not (float(gaussian_scale) > 0):
            raise ValueError(f"gaussian_scale must be positive or None, got {gaussian_scale!r}.")
        if not (isinstance(beta, (int, float)) and math.isfinite(beta) and beta >= 0):
            raise ValueError(f"beta must be a finite number >= 0, got {beta!r}.")
        channels = tuple(check_positive_int("conv_channels", c) for c in conv_channels)
        if encoder == "conv":
            if len(shape) != 3:
                raise ValueError(
                    f"encoder='conv' needs input_shape (C, H, W), got {shape}; use encoder='mlp' "
                    "for vector data."
                )
            if not channels:
                raise ValueError("conv_channels must name at least one layer for encoder='conv'.")
        super().__init__(
            dict(
                input_shape=list(shape),
                latent_dim=latent_dim,
                hidden_dims=list(hidden),
                encoder=encoder,
                conv_channels=list(channels),
                likelihood=likelihood,
                gaussian_scale=None if gaussian_scale is None else float(gaussian_scale),
                activation=activation,
                beta=float(beta),
                seed=seed,
            )
        )
        self.input_shape = shape
        self.latent_dim = latent_dim
        self.likelihood = likelihood
        self.beta = float(beta)
        with seeded_init(seed):
            self._build_networks(shape, hidden, channels, encoder, activation, gaussian_scale)

    def _build_networks(
        self,
        shape: tuple[int, ...],
        hidden: tuple[int, ...],
        channels: tuple[int, ...],
        encoder: str,
        activation: str,
        gaussian_scale: float | None,
    ) -> None:
        latent_dim, likelihood = self.latent_dim, self.likelihood
        if encoder == "mlp":
            self.encoder = MLPEncoder(math.prod(shape), hidden, latent_dim, activation, len(shape))
            self.decoder = MLPDecoder(latent_dim, hidden, shape, activation)
        else:
            self.encoder = ConvEncoder(shape, channels, hidden, latent_dim, activation)  # type: ignore[arg-type]
            self.decoder = ConvDecoder(latent_dim, hidden, shape, channels, activation)  # type: ignore[arg-type]
        if likelihood == "gaussian" and gaussian_scale is None:
            self.decoder.log_scale = nn.Parameter(torch.zeros(shape))
        else:
            self.register_buffer(
                "fixed_scale", torch.tensor(float(gaussian_scale or 1.0)), persistent=False
            )

    # ----------------------------------------------------------------------------- Pyro program
    def observation_dist(self, decoded: torch.Tensor) -> dist.TorchDistribution:
        """``p(x | z)`` from the decoder output ``(..., *input_shape)``; event dims = data dims."""
        event_dims = len(self.input_shape)
        if self.likelihood == "bernoulli":
            # validate_args=False: grey levels in [0, 1] are scored by cross-entropy.
            return dist.Bernoulli(logits=decoded, validate_args=False).to_event(event_dims)
        if hasattr(self.decoder, "log_scale"):
            scale = self.decoder.log_scale.exp()
        else:
            scale = self.fixed_scale
        return dist.Normal(decoded, scale.expand_as(decoded)).to_event(event_dims)

    def prior(self, batch_shape: tuple[int, ...], device: torch.device) -> dist.TorchDistribution:
        zeros = torch.zeros(*batch_shape, self.latent_dim, device=device)
        return dist.Normal(zeros, torch.ones_like(zeros)).to_event(1)

    def model(self, x: torch.Tensor, *, num_data: int | None = None) -> torch.Tensor:
        """Generative model. ``x: (B, *input_shape)``; ``num_data`` is the full data set's size
        (defaults to ``B``), so a minibatch's log-likelihood is scaled by ``num_data / B``."""
        pyro.module(f"{self.pyro_name}.decoder", self.decoder)
        with self.data_plate(x, num_data):
            with poutine.scale(scale=self.beta):
                z = pyro.sample("z", self.prior((x.shape[0],), x.device))
            return pyro.sample("x", self.observation_dist(self.decoder(z)), obs=x)

    def guide(self, x: torch.Tensor, *, num_data: int | None = None) -> torch.Tensor:
        """Amortized mean-field Gaussian ``q(z | x)``; same arguments as :meth:`model`."""
        pyro.module(f"{self.pyro_name}.encoder", self.encoder)
        with self.data_plate(x, num_data):
            loc, scale = self.encoder(x)
            with poutine.scale(scale=self.beta):
                return pyro.sample("z", dist.Normal(loc, scale).to_event(1))

    def numpyro_twin(self) -> Any:
        """The NumPyro twin (:class:`bayesvae.backends.numpyro.vae.NumPyroVAE`), starting from
        this model's current weights; ``bayesvae.fit(..., backend="numpyro")`` trains it and
        copies the result back."""
        from bayesvae.backends.numpyro.vae import NumPyroVAE

        return NumPyroVAE(self)

    # ------------------------------------------------------------------------------ validation
    def check_data(self, x: Any, *rest: Any) -> tuple[torch.Tensor]:
        """Return ``x`` as a float tensor, raising ``ValueError``/``TypeError`` unless it fits
        this model: ``(N, *input_shape)``, finite, and in [0, 1] for the Bernoulli likelihood."""
        if rest:
            raise ValueError(
                f"VAE takes one data array x, got {1 + len(rest)} arrays; pass labels to the "
                "plots, or use a conditional model."
            )
        return (self._check_x("x", x),)

    def _check_x(self, name: str, x: Any) -> torch.Tensor:
        x = as_float_tensor(name, x)
        expected = (len(self.input_shape) + 1,)
        shape_text = "(N, " + ", ".join(str(s) for s in self.input_shape) + ")"
        if x.dim() not in expected or tuple(x.shape[1:]) != self.input_shape:
            raise ValueError(f"{name} must have shape {shape_text}, got {tuple(x.shape)}.")
        if self.likelihood == "bernoulli":
            check_unit_interval(name, x, "likelihood='bernoulli'")
        return x

    # --------------------------------------------------------------------------------- queries
    def _batches(self, x: torch.Tensor, batch_size: int):
        for start in range(0, x.shape[0], batch_size):
            yield x[start : start + batch_size].to(self.device)

    @torch.no_grad()
    def encode(self, x: Any, *, batch_size: int = 1024) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior ``q(z | x)``: ``x: (N, *input_shape)`` -> ``(loc, scale)``, each
        ``(N, latent_dim)``, on the model's device."""
        x = self._check_x("x", x)
        parts = [self.encoder(batch) for batch in self._batches(x, batch_size)]
        return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])

    @torch.no_grad()
    def decode(self, z: Any) -> torch.Tensor:
        """Mean of ``p(x | z)``: ``z: (N, latent_dim)`` -> ``(N, *input_shape)`` (probabilities
        for Bernoulli, the Gaussian mean otherwise)."""
        z = as_float_tensor("z", z).to(self.device)
        if z.dim() != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(f"z must have shape (N, {self.latent_dim}), got {tuple(z.shape)}.")
        out = self.decoder(z)
        return torch.sigmoid(out) if self.likelihood == "bernoulli" else out

    @torch.no_grad()
    def sample(self, n: int, *, seed: int | None = None, mean: bool = True) -> torch.Tensor:
        """``n`` draws from the generative model, ``(n, *input_shape)``: the likelihood's mean at
        ``z ~ N(0, I)`` (``mean=True``), or ``x ~ p(x | z)``."""
        n = check_positive_int("n", n)
        generator = torch.Generator(device=self.device)
        if seed is not None:
            generator.manual_seed(seed)
        else:
            generator.seed()
        z = torch.randn(n, self.latent_dim, generator=generator, device=self.device)
        means = self.decode(z)
        if mean:
            return means
        if self.likelihood == "bernoulli":
            return torch.bernoulli(means, generator=generator)
        scale = self.observation_dist(means).base_dist.scale
        return means + scale * torch.randn(means.shape, generator=generator, device=self.device)

    @torch.no_grad()
    def reconstruct(self, x: Any, *, batch_size: int = 1024) -> torch.Tensor:
        """Decode the posterior mean: ``x: (N, *input_shape)`` -> ``(N, *input_shape)``."""
        loc, _ = self.encode(x, batch_size=batch_size)
        return self.decode(loc)

    def _log_weights(self, x: torch.Tensor, num_samples: int) -> torch.Tensor:
        """``log p(x, z_k) - log q(z_k | x)`` for ``k < num_samples``: ``(num_samples, B)``."""
        loc, scale = self.encoder(x)
        q = dist.Normal(loc, scale).to_event(1)
        z = q.sample((num_samples,))
        log_p = self.prior(z.shape[:-1], x.device).log_prob(z)
        log_p = log_p + self.observation_dist(self.decoder(z)).log_prob(x)
        return log_p - q.log_prob(z)

    @torch.no_grad()
    def log_likelihood(
        self,
        x: Any,
        *,
        num_samples: int = 5000,
        batch_size: int = 100,
        particle_batch: int = 500,
        seed: int | None = None,
    ) -> torch.Tensor:
        """Importance-sampled estimate of ``log p(x)`` per data point, in nats, ``(N,)``.

        ``log p(x) ≈ logsumexp_k[log p(x, z_k) - log q(z_k | x)] - log K`` with ``z_k ~ q(z | x)``
        (Burda et al. 2016); a stochastic lower bound that tightens as ``K = num_samples`` grows.
        Work is chunked over points (``batch_size``) and particles (``particle_batch``), so memory
        stays bounded for any ``K``.
        """
        x = self._check_x("x", x)
        num_samples = check_positive_int("num_samples", num_samples)
        if seed is not None:
            pyro.set_rng_seed(seed)
        out = []
        for batch in self._batches(x, check_positive_int("batch_size", batch_size)):
            total = torch.full((batch.shape[0],), -math.inf, device=batch.device)
            for start in range(0, num_samples, particle_batch):
                k = min(particle_batch, num_samples - start)
                total = torch.logaddexp(total, self._log_weights(batch, k).logsumexp(0))
            out.append(total - math.log(num_samples))
        return torch.cat(out).cpu()

    @torch.no_grad()
    def elbo(
        self, x: Any, *, num_samples: int = 1, batch_size: int = 1024, seed: int | None = None
    ) -> torch.Tensor:
        """Evidence lower bound per data point (β = 1), in nats, ``(N,)``; averaged over
        ``num_samples`` draws of ``z ~ q(z | x)``."""
        x = self._check_x("x", x)
        num_samples = check_positive_int("num_samples", num_samples)
        if seed is not None:
            pyro.set_rng_seed(seed)
        parts = [
            self._log_weights(batch, num_samples).mean(0)
            for batch in self._batches(x, check_positive_int("batch_size", batch_size))
        ]
        return torch.cat(parts).cpu()


def _as_shape(input_shape: int | Sequence[int]) -> tuple[int, ...]:
    if isinstance(input_shape, (int, np.integer)) and not isinstance(input_shape, bool):
        dims: tuple[Any, ...] = (input_shape,)
    elif isinstance(input_shape, (tuple, list)) and input_shape:
        dims = tuple(input_shape)
    else:
        raise TypeError(
            f"input_shape must be an int or a tuple like (C, H, W), got {input_shape!r}."
        )
    for d in dims:
        check_positive_int("input_shape", d)
    if len(dims) not in (1, 3):
        raise ValueError(f"input_shape must be (D,) or (C, H, W), got {dims}.")
    return tuple(int(d) for d in dims)
