"""A VAE with a Gaussian-mixture prior whose component is a discrete latent summed out exactly.

Generative model: ``c ~ Categorical(softmax(w))``, ``z | c ~ N(mu_c, diag(sigma_c^2))``,
``x | z ~ p(x | decoder(z))``, with ``w``, ``mu`` and ``sigma`` learned.
Guide: the amortized Gaussian ``q(z | x)`` (no ``c``: the model's site ``c`` is marked for
parallel enumeration, and ``TraceEnum_ELBO`` sums it out, so the prior term is the exact mixture
density ``log sum_c pi_c N(z; mu_c, sigma_c)``). The family's default objective is ``"enum"``.

``cluster_proba(x)`` gives ``p(c | z = E_q[z | x])``: an unsupervised clustering of the data.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from torch import nn

from bayesvae.data.validation import check_positive_int
from bayesvae.models.vae import VAE

__all__ = ["MixturePriorVAE"]


class MixturePrior(nn.Module):
    """The prior's learned component logits ``(K,)``, means ``(K, D)`` (drawn from N(0, I), so
    the components start apart) and log scales ``(K, D)``."""

    def __init__(self, components: int, latent_dim: int) -> None:
        super().__init__()
        self.logits = nn.Parameter(torch.zeros(components))
        self.locs = nn.Parameter(torch.randn(components, latent_dim))
        self.log_scales = nn.Parameter(torch.zeros(components, latent_dim))


class MixturePriorVAE(VAE):
    """VAE with a learned ``K``-component Gaussian-mixture prior (sites ``c`` (enumerated),
    ``z``, ``x``).

    Args:
        input_shape: shape of one data point (as :class:`~bayesvae.models.VAE`).
        components: number of mixture components ``K`` (>= 2).
        **options: the other :class:`~bayesvae.models.VAE` options (latent_dim, hidden_dims,
            encoder, likelihood, beta, flows, ...).
    """

    default_elbo = "enum"
    #: objectives ``bayesvae.fit`` accepts for this model
    supported_elbos = ("enum",)
    supported_elbos_reason = (
        "the component c must be summed out by enumeration (TraceEnum_ELBO); other objectives "
        "would sample it from the prior without a guide."
    )

    def __init__(
        self, input_shape: int | Sequence[int], *, components: int = 10, **options: Any
    ) -> None:
        self.components = check_positive_int("components", components)
        if self.components < 2:
            raise ValueError(f"components must be at least 2, got {components}.")
        super().__init__(input_shape, **options)
        self.config["components"] = self.components

    def _build_networks(self, *args: Any, **kwargs: Any) -> None:
        super()._build_networks(*args, **kwargs)
        self.mixture = MixturePrior(self.components, self.latent_dim)

    def _component_dist(self) -> dist.TorchDistribution:
        """The K components, batch shape ``(K,)``, event ``(latent_dim,)``."""
        return dist.Normal(self.mixture.locs, self.mixture.log_scales.exp()).to_event(1)

    def prior(self, batch_shape: tuple[int, ...], device: torch.device) -> dist.TorchDistribution:
        """The mixture ``p(z) = sum_c pi_c N(z; mu_c, sigma_c)`` with batch shape ``batch_shape``
        (used by the queries; training enumerates ``c`` instead)."""
        mixture = dist.MixtureSameFamily(
            dist.Categorical(logits=self.mixture.logits), self._component_dist()
        )
        return mixture.expand(batch_shape)

    def _model(
        self, x: torch.Tensor, context: torch.Tensor | None, num_data: int | None
    ) -> torch.Tensor:
        pyro.module(f"{self.pyro_name}.decoder", self.decoder)
        pyro.module(f"{self.pyro_name}.mixture", self.mixture)
        with self.data_plate(x, num_data):
            with poutine.scale(scale=self.beta):
                c = pyro.sample(
                    "c",
                    dist.Categorical(logits=self.mixture.logits),
                    infer={"enumerate": "parallel"},
                )
                loc, scale = self.mixture.locs[c], self.mixture.log_scales[c].exp()
                z = pyro.sample("z", dist.Normal(loc, scale).to_event(1))
            return pyro.sample("x", self.observation_dist(self.decoder(z, context)), obs=x)

    def _draw_latent(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """``c ~ Categorical(pi)``, then ``z ~ N(mu_c, sigma_c)``: ``(n, latent_dim)``."""
        probs = self.mixture.logits.softmax(-1)
        c = torch.multinomial(probs, n, replacement=True, generator=generator)
        noise = torch.randn(n, self.latent_dim, generator=generator, device=self.device)
        return self.mixture.locs[c] + self.mixture.log_scales[c].exp() * noise

    @torch.no_grad()
    def cluster_proba(self, x: Any, *, batch_size: int = 1024) -> torch.Tensor:
        """``p(c | z)`` at the posterior mean ``z = E_q[z | x]``: ``(N, components)``."""
        loc, _ = self.encode(x, batch_size=batch_size)
        log_joint = self.mixture.logits.log_softmax(-1) + self._component_dist().log_prob(
            loc[:, None, :]
        )
        return log_joint.softmax(-1)
