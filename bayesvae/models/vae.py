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
from torch.nn import functional as F

from bayesvae.data.validation import (
    as_float_tensor,
    check_choice,
    check_non_negative_number,
    check_positive_int,
    check_unit_interval,
)
from bayesvae.models.base import PyroModel, seeded_init

__all__ = ["VAE", "ACTIVATIONS", "LIKELIHOODS", "ENCODERS", "FLOW_TYPES"]

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
FLOW_TYPES = ("iaf", "spline")


def _mlp(sizes: Sequence[int], activation: str) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(sizes) - 2:
            layers.append(ACTIVATIONS[activation]())
    return nn.Sequential(*layers)


def _with_context(features: torch.Tensor, context: torch.Tensor | None) -> torch.Tensor:
    """Append ``context: (B, C)`` (e.g. one-hot labels) to ``features: (..., B, F)``."""
    if context is None:
        return features
    return torch.cat([features, context.expand(*features.shape[:-1], context.shape[-1])], dim=-1)


def _encoder_output(gaussian: bool, out: torch.Tensor) -> Any:
    """The encoder head's output as ``(loc, scale)`` of a Gaussian (from ``(loc, log_var)``), or
    as the logits themselves."""
    if not gaussian:
        return out
    loc, log_var = out.chunk(2, dim=-1)
    return loc, torch.exp(0.5 * log_var)


class MLPEncoder(nn.Module):
    """``x: (..., *input_shape)`` (and an optional ``context: (..., C)``) -> ``(loc, scale)``,
    each ``(..., latent_dim)``; with ``gaussian=False``, ``latent_dim`` logits instead.

    :meth:`features` is the last hidden layer ``h(x)``, which conditions flow guides.
    """

    def __init__(
        self,
        input_dim: int,
        hidden_dims: Sequence[int],
        latent_dim: int,
        activation: str,
        event_dims: int,
        context_dim: int = 0,
        gaussian: bool = True,
    ) -> None:
        super().__init__()
        self.event_dims = event_dims
        self.gaussian = gaussian
        self.feature_dim = hidden_dims[-1] if hidden_dims else input_dim + context_dim
        outputs = 2 * latent_dim if gaussian else latent_dim
        self.net = _mlp([input_dim + context_dim, *hidden_dims, outputs], activation)

    def features(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        flat = x.flatten(start_dim=x.dim() - self.event_dims) if self.event_dims > 1 else x
        return self.net[:-1](_with_context(flat, context))

    def params_from(self, features: torch.Tensor) -> Any:
        return _encoder_output(self.gaussian, self.net[-1](features))

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> Any:
        flat = x.flatten(start_dim=x.dim() - self.event_dims) if self.event_dims > 1 else x
        if context is None:
            return _encoder_output(self.gaussian, self.net(flat))  # the hot path: no slicing
        return _encoder_output(self.gaussian, self.net[1:](self._first_layer(flat, context)))

    def _first_layer(self, flat: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """The first linear layer on ``[flat, context]`` without building the concatenation:
        the weight's last ``C`` columns act on the context alone. A context with more batch dims
        than ``flat`` (a label enumerated over ``K`` classes: ``(K, 1, C)`` or ``(K, B, C)``
        against ``(B, D)``) then costs ``D`` columns once per row, not once per class."""
        first = self.net[0]
        width = flat.shape[-1]
        return F.linear(flat, first.weight[:, :width], first.bias) + F.linear(
            context, first.weight[:, width:]
        )


class MLPDecoder(nn.Module):
    """``z: (..., latent_dim)`` (and an optional ``context: (..., C)``) -> distribution
    parameters ``(..., *input_shape)``."""

    def __init__(
        self,
        latent_dim: int,
        hidden_dims: Sequence[int],
        input_shape: tuple[int, ...],
        activation: str,
        context_dim: int = 0,
    ) -> None:
        super().__init__()
        self.input_shape = input_shape
        self.net = _mlp(
            [latent_dim + context_dim, *reversed(hidden_dims), math.prod(input_shape)], activation
        )

    def forward(self, z: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        out = self.net(_with_context(z, context))
        return out.reshape(*z.shape[:-1], *self.input_shape) if len(self.input_shape) > 1 else out


def _conv_sizes(size: int, layers: int) -> list[int]:
    sizes = [size]
    for _ in range(layers):
        sizes.append((sizes[-1] + 1) // 2)  # kernel 3, stride 2, padding 1
    return sizes


class ConvEncoder(nn.Module):
    """``x: (..., C, H, W)`` -> ``(loc, scale)`` (or logits with ``gaussian=False``); stride-2
    3x3 convolutions, then a linear head that also takes the optional ``context: (..., C')``."""

    def __init__(
        self,
        input_shape: tuple[int, int, int],
        channels: Sequence[int],
        hidden_dims: Sequence[int],
        latent_dim: int,
        activation: str,
        context_dim: int = 0,
        gaussian: bool = True,
    ) -> None:
        super().__init__()
        c, h, w = input_shape
        self.gaussian = gaussian
        layers: list[nn.Module] = []
        for c_in, c_out in zip([c, *channels[:-1]], channels, strict=True):
            layers += [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), ACTIVATIONS[activation]()]
        self.conv = nn.Sequential(*layers)
        flat = channels[-1] * _conv_sizes(h, len(channels))[-1] * _conv_sizes(w, len(channels))[-1]
        self.feature_dim = hidden_dims[-1] if hidden_dims else flat + context_dim
        outputs = 2 * latent_dim if gaussian else latent_dim
        self.head = _mlp([flat + context_dim, *hidden_dims, outputs], activation)

    def _head_input(self, x: torch.Tensor, context: torch.Tensor | None) -> torch.Tensor:
        batch_shape = x.shape[:-3]
        conv = self.conv(x.reshape(-1, *x.shape[-3:])).flatten(start_dim=1)
        return _with_context(conv.reshape(*batch_shape, -1), context)

    def features(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        return self.head[:-1](self._head_input(x, context))

    def params_from(self, features: torch.Tensor) -> Any:
        return _encoder_output(self.gaussian, self.head[-1](features))

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> Any:
        return _encoder_output(self.gaussian, self.head(self._head_input(x, context)))


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
        context_dim: int = 0,
    ) -> None:
        super().__init__()
        c, h, w = input_shape
        hs, ws = _conv_sizes(h, len(channels)), _conv_sizes(w, len(channels))
        self.start_shape = (channels[-1], hs[-1], ws[-1])
        self.head = nn.Sequential(
            _mlp(
                [latent_dim + context_dim, *reversed(hidden_dims), math.prod(self.start_shape)],
                activation,
            ),
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

    def forward(self, z: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        batch_shape = z.shape[:-1]
        z = _with_context(z, context)
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
        flows: number of conditional normalizing flows after the amortized Gaussian in the guide
            (0: the plain Gaussian guide). Each flow is conditioned on the encoder's last hidden
            layer ``h(x)`` (Kingma et al. 2016).
        flow_type: ``"iaf"`` (inverse autoregressive affine flow,
            ``pyro.distributions.transforms.conditional_affine_autoregressive``) or ``"spline"``
            (``conditional_spline_autoregressive``, rational-quadratic splines on [-3, 3]).
        seed: seed for the initial weights (``None``: drawn from torch's global RNG).

    Example:
        >>> vae = VAE(64, latent_dim=2, hidden_dims=(32,))
        >>> svi = pyro.infer.SVI(vae.model, vae.guide, pyro.optim.Adam({"lr": 1e-3}),
        ...                      pyro.infer.Trace_ELBO())
    """

    max_plate_nesting = 1
    #: plate of the amortized per-data-point latents (per-point PSIS diagnostics)
    local_plate = "data"
    #: whether the latent is a Gaussian vector that the latent-space tools can walk through
    continuous_latent = True

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
        flows: int = 0,
        flow_type: str = "iaf",
        seed: int | None = None,
    ) -> None:
        shape = _as_shape(input_shape)
        latent_dim = check_positive_int("latent_dim", latent_dim)
        hidden = tuple(check_positive_int("hidden_dims", h) for h in hidden_dims)
        check_choice("encoder", encoder, ENCODERS)
        check_choice("likelihood", likelihood, LIKELIHOODS)
        check_choice("activation", activation, tuple(ACTIVATIONS))
        check_choice("flow_type", flow_type, FLOW_TYPES)
        if isinstance(flows, bool) or not isinstance(flows, (int, np.integer)) or flows < 0:
            raise ValueError(f"flows must be an integer >= 0 (0: no flow), got {flows!r}.")
        if gaussian_scale is not None and not (float(gaussian_scale) > 0):
            raise ValueError(f"gaussian_scale must be positive or None, got {gaussian_scale!r}.")
        check_non_negative_number("beta", beta)
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
                flows=int(flows),
                flow_type=flow_type,
                seed=seed,
            )
        )
        self.input_shape = shape
        self.latent_dim = latent_dim
        self.likelihood = likelihood
        self.beta = float(beta)
        self.num_flows = int(flows)
        with seeded_init(seed):
            self._build_networks(shape, hidden, channels, encoder, activation, gaussian_scale)
            self.flows = nn.ModuleList([self._make_flow(flow_type) for _ in range(self.num_flows)])

    def _build_networks(
        self,
        shape: tuple[int, ...],
        hidden: tuple[int, ...],
        channels: tuple[int, ...],
        encoder: str,
        activation: str,
        gaussian_scale: float | None,
        *,
        context_dim: int = 0,
        encoder_outputs: int | None = None,
    ) -> None:
        """Encoder and decoder; ``context_dim`` extra inputs to both (conditional models);
        ``encoder_outputs`` logits instead of a Gaussian's (loc, scale) (discrete latents)."""
        latent_dim, likelihood = self.latent_dim, self.likelihood
        gaussian = encoder_outputs is None
        outputs = latent_dim if gaussian else encoder_outputs
        if encoder == "mlp":
            self.encoder = MLPEncoder(
                math.prod(shape), hidden, outputs, activation, len(shape), context_dim, gaussian
            )
            self.decoder = MLPDecoder(latent_dim, hidden, shape, activation, context_dim)
        else:
            self.encoder = ConvEncoder(
                shape, channels, hidden, outputs, activation, context_dim, gaussian
            )  # type: ignore[arg-type]
            self.decoder = ConvDecoder(latent_dim, hidden, shape, channels, activation, context_dim)  # type: ignore[arg-type]
        if likelihood == "gaussian" and gaussian_scale is None:
            self.decoder.log_scale = nn.Parameter(torch.zeros(shape))
        else:
            self.register_buffer(
                "fixed_scale", torch.tensor(float(gaussian_scale or 1.0)), persistent=False
            )

    def _make_flow(self, flow_type: str) -> nn.Module:
        from pyro.distributions import transforms

        context_dim = self.encoder.feature_dim
        if flow_type == "iaf":
            return transforms.conditional_affine_autoregressive(self.latent_dim, context_dim)
        return transforms.conditional_spline_autoregressive(self.latent_dim, context_dim)

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
        """``p(z) = N(0, I)`` with batch shape ``batch_shape``."""
        zeros = torch.zeros(*batch_shape, self.latent_dim, device=device)
        return dist.Normal(zeros, torch.ones_like(zeros)).to_event(1)

    def posterior(self, x: torch.Tensor, context: torch.Tensor | None = None) -> Any:
        """The guide's ``q(z | x)`` for ``x: (B, *input_shape)``, batch shape ``(B,)``: a diagonal
        Gaussian, followed by the conditional flows when ``flows > 0``."""
        if not self.num_flows:
            return dist.Normal(*self.encoder(x, context)).to_event(1)
        features = self.encoder.features(x, context)
        base = dist.Normal(*self.encoder.params_from(features)).to_event(1)
        return dist.TransformedDistribution(base, [flow.condition(features) for flow in self.flows])

    def model(self, x: torch.Tensor, *, num_data: int | None = None) -> torch.Tensor:
        """Generative model. ``x: (B, *input_shape)``; ``num_data`` is the full data set's size
        (defaults to ``B``), so a minibatch's log-likelihood is scaled by ``num_data / B``."""
        return self._model(x, None, num_data)

    def guide(self, x: torch.Tensor, *, num_data: int | None = None) -> torch.Tensor:
        """Amortized ``q(z | x)`` (Gaussian, then flows); same arguments as :meth:`model`."""
        return self._guide(x, None, num_data)

    def _model(
        self, x: torch.Tensor, context: torch.Tensor | None, num_data: int | None
    ) -> torch.Tensor:
        pyro.module(f"{self.pyro_name}.decoder", self.decoder)
        with self.data_plate(x, num_data):
            with poutine.scale(scale=self.beta):
                z = pyro.sample("z", self.prior((x.shape[0],), x.device))
            return pyro.sample("x", self.observation_dist(self._decoder_logits(z, context)), obs=x)

    def _decoder_logits(self, z: torch.Tensor, context: torch.Tensor | None) -> torch.Tensor:
        """Decoder output for the value of site ``z`` (a latent family may transform it first)."""
        return self.decoder(z, context)

    def _guide(
        self, x: torch.Tensor, context: torch.Tensor | None, num_data: int | None
    ) -> torch.Tensor:
        pyro.module(f"{self.pyro_name}.encoder", self.encoder)
        if self.num_flows:
            pyro.module(f"{self.pyro_name}.flows", self.flows)
        with self.data_plate(x, num_data):
            posterior = self.posterior(x, context)
            with poutine.scale(scale=self.beta):
                return pyro.sample("z", posterior)

    # ------------------------------------------------------------------------------ validation
    def check_data(self, x: Any, *rest: Any) -> tuple[torch.Tensor, ...]:
        """Return ``x`` as a float tensor, raising ``ValueError``/``TypeError`` unless it fits
        this model: ``(N, *input_shape)``, finite, and in [0, 1] for the Bernoulli likelihood."""
        if rest:
            raise ValueError(
                f"VAE takes one data array x, got {1 + len(rest)} arrays; pass labels to the "
                "plots, or use ConditionalVAE for labelled data."
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

    def _context(self, y: Any, n: int) -> torch.Tensor | None:
        """The network context for ``n`` rows from labels ``y`` (conditional models); the
        unconditional VAE takes none."""
        if y is not None:
            raise ValueError(
                f"{type(self).__name__} is unconditional and takes no labels y; use "
                "ConditionalVAE for label-conditioned generation."
            )
        return None

    # --------------------------------------------------------------------------------- queries
    def _batches(self, x: torch.Tensor, context: torch.Tensor | None, batch_size: int):
        for start in range(0, x.shape[0], batch_size):
            rows = slice(start, start + batch_size)
            yield (
                x[rows].to(self.device),
                None if context is None else context[rows].to(self.device),
            )

    @torch.no_grad()
    def encode(
        self, x: Any, y: Any = None, *, batch_size: int = 1024
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Amortized Gaussian ``q(z | x)``: ``x: (N, *input_shape)`` -> ``(loc, scale)``, each
        ``(N, latent_dim)``, on the model's device (with flows: the Gaussian before the flows;
        :meth:`posterior` gives the whole guide). ``y``: labels, conditional models only."""
        x = self._check_x("x", x)
        context = self._context(y, x.shape[0])
        parts = [self.encoder(*batch) for batch in self._batches(x, context, batch_size)]
        return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])

    def _check_z(self, z: Any) -> torch.Tensor:
        z = as_float_tensor("z", z).to(self.device)
        if z.dim() != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(f"z must have shape (N, {self.latent_dim}), got {tuple(z.shape)}.")
        return z

    def _mean(self, decoded: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(decoded) if self.likelihood == "bernoulli" else decoded

    @torch.no_grad()
    def decode(self, z: Any, y: Any = None) -> torch.Tensor:
        """Mean of ``p(x | z)``: ``z: (N, latent_dim)`` -> ``(N, *input_shape)`` (probabilities
        for Bernoulli, the Gaussian mean otherwise). ``y``: labels, conditional models only."""
        z = self._check_z(z)
        context = self._context(y, z.shape[0])
        return self._mean(self.decoder(z, None if context is None else context.to(self.device)))

    def _generator(self, seed: int | None) -> torch.Generator:
        generator = torch.Generator(device=self.device)
        if seed is not None:
            generator.manual_seed(seed)
        else:
            generator.seed()
        return generator

    def _draw_latent(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """``n`` draws of ``z`` from the prior, ``(n, latent_dim)``."""
        return torch.randn(n, self.latent_dim, generator=generator, device=self.device)

    @torch.no_grad()
    def sample(
        self, n: int, y: Any = None, *, seed: int | None = None, mean: bool = True
    ) -> torch.Tensor:
        """``n`` draws from the generative model, ``(n, *input_shape)``: the likelihood's mean at
        ``z ~ p(z)`` (``mean=True``), or ``x ~ p(x | z)``. ``y``: the class(es) to generate,
        conditional models only."""
        n = check_positive_int("n", n)
        generator = self._generator(seed)
        means = self.decode(self._draw_latent(n, generator), y)
        if mean:
            return means
        if self.likelihood == "bernoulli":
            return torch.bernoulli(means, generator=generator)
        scale = self.observation_dist(means).base_dist.scale
        return means + scale * torch.randn(means.shape, generator=generator, device=self.device)

    @torch.no_grad()
    def reconstruct(self, x: Any, y: Any = None, *, batch_size: int = 1024) -> torch.Tensor:
        """Decode the posterior mean: ``x: (N, *input_shape)`` -> ``(N, *input_shape)``."""
        loc, _ = self.encode(x, y, batch_size=batch_size)
        return self.decode(loc, y)

    def _log_weights(
        self,
        x: torch.Tensor,
        context: torch.Tensor | None,
        num_samples: int,
        noise: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``log p(x, z_k) - log q(z_k | x)`` for ``k < num_samples``: ``(num_samples, B)``.

        ``noise``: ``(num_samples, latent_dim)`` standard-normal draws shared by every row
        (common random numbers: ``z_k = loc + scale * noise_k``, then the flows), so a row's
        estimate does not depend on the other rows; by default each row draws its own."""
        q = self.posterior(x, context)
        if noise is None:
            z = q.rsample((num_samples,))
        else:
            flows = isinstance(q, dist.TransformedDistribution)
            gaussian = q.base_dist if flows else q
            z = gaussian.mean + gaussian.stddev * noise[:, None, :].to(gaussian.mean)
            for transform in q.transforms if flows else ():
                z = transform(z)
        log_q = q.log_prob(z)
        log_p = self.prior(z.shape[: z.dim() - len(q.event_shape)], x.device).log_prob(z)
        log_p = log_p + self.observation_dist(self._decoder_logits(z, context)).log_prob(x)
        return log_p - log_q

    def _common_noise(self, num_samples: int) -> torch.Tensor:
        """``(num_samples, latent_dim)`` standard-normal draws for every row (Gaussian guides)."""
        if not self.continuous_latent:
            raise ValueError(f"common_noise needs a Gaussian guide; {self.family} has none.")
        return torch.randn(num_samples, self.latent_dim, device=self.device)

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
        """Importance-sampled estimate of ``log p(x)`` (``log p(x | y)`` for conditional models)
        per data point, in nats, ``(N,)``.

        ``log p(x) ≈ logsumexp_k[log p(x, z_k) - log q(z_k | x)] - log K`` with ``z_k ~ q(z | x)``
        (Burda et al. 2016); a stochastic lower bound that tightens as ``K = num_samples`` grows.
        Work is chunked over points (``batch_size``) and particles (``particle_batch``), so memory
        stays bounded for any ``K``. With ``common_noise`` every row uses the same ``K`` guide
        noise draws, so a row's estimate is the same whatever other rows, or order, it comes with
        (what an anomaly score needs); each estimate stays unbiased.
        """
        x = self._check_x("x", x)
        context = self._context(y, x.shape[0])
        num_samples = check_positive_int("num_samples", num_samples)
        particle_batch = check_positive_int("particle_batch", particle_batch)
        if seed is not None:
            pyro.set_rng_seed(seed)
        noise = self._common_noise(num_samples) if common_noise else None
        out = []
        for batch, ctx in self._batches(x, context, check_positive_int("batch_size", batch_size)):
            total = torch.full((batch.shape[0],), -math.inf, device=batch.device)
            for start in range(0, num_samples, particle_batch):
                k = min(particle_batch, num_samples - start)
                shared = None if noise is None else noise[start : start + k]
                weights = self._log_weights(batch, ctx, k, shared)
                total = torch.logaddexp(total, weights.logsumexp(0))
            out.append(total - math.log(num_samples))
        return torch.cat(out).cpu()

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
        """Evidence lower bound per data point (β = 1), in nats, ``(N,)``; averaged over
        ``num_samples`` draws of ``z ~ q(z | x)`` (the same guide noise for every row with
        ``common_noise``, see :meth:`log_likelihood`)."""
        x = self._check_x("x", x)
        context = self._context(y, x.shape[0])
        num_samples = check_positive_int("num_samples", num_samples)
        if seed is not None:
            pyro.set_rng_seed(seed)
        noise = self._common_noise(num_samples) if common_noise else None
        parts = [
            self._log_weights(batch, ctx, num_samples, noise).mean(0)
            for batch, ctx in self._batches(
                x, context, check_positive_int("batch_size", batch_size)
            )
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
