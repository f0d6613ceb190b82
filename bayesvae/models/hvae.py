"""A VAE with two stochastic layers.

Generative model: ``z2 ~ N(0, I)``, ``z1 | z2 ~ N(mu(z2), diag(sigma(z2)^2))``,
``x | z1 ~ p(x | decoder(z1))``.
Guide (bottom-up, as in Burda et al. 2016): ``q(z1 | x) q(z2 | z1)``.

The ELBO splits into a reconstruction term and one KL-like term per layer,
``E_q[log q(z1 | x) - log p(z1 | z2)]`` and ``E_q[log q(z2 | z1) - log p(z2)]``; ``bayesvae.fit``
reports them per epoch as ``kl_z1`` and ``kl_z2``, and :meth:`HierarchicalVAE.kl_per_layer` on
any data. An inactive top layer (``kl_z2`` near 0) is the usual failure of such models; KL
warm-up (``fit(..., kl_warmup=E)``) is the usual cure.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pyro
import pyro.distributions as dist
import torch
from pyro import poutine

from bayesvae.data.validation import check_positive_int
from bayesvae.models.vae import VAE, MLPEncoder

__all__ = ["HierarchicalVAE"]


class HierarchicalVAE(VAE):
    """Two-layer VAE as a Pyro model/guide pair (sites ``z2``, ``z1``, ``x``).

    Args:
        input_shape: shape of one data point (as :class:`~bayesvae.models.VAE`).
        latent_dim: size of the lower latent ``z1`` (the one :meth:`encode`/:meth:`decode` use).
        top_latent_dim: size of the top latent ``z2``.
        top_hidden_dims: hidden widths of the networks between the layers, ``q(z2 | z1)`` and
            ``p(z1 | z2)``.
        **options: the other :class:`~bayesvae.models.VAE` options (hidden_dims, encoder,
            likelihood, beta, ...); flow guides are not offered for this model.
    """

    def __init__(
        self,
        input_shape: int | Sequence[int],
        *,
        latent_dim: int = 20,
        top_latent_dim: int = 10,
        top_hidden_dims: Sequence[int] = (100,),
        **options: Any,
    ) -> None:
        self.top_latent_dim = check_positive_int("top_latent_dim", top_latent_dim)
        self.top_hidden_dims = tuple(
            check_positive_int("top_hidden_dims", h) for h in top_hidden_dims
        )
        if options.get("flows", 0):
            raise ValueError("HierarchicalVAE takes no flows; use flows=0 (or the VAE class).")
        super().__init__(input_shape, latent_dim=latent_dim, **options)
        self.config.update(
            top_latent_dim=self.top_latent_dim, top_hidden_dims=list(self.top_hidden_dims)
        )

    def _build_networks(self, *args: Any, **kwargs: Any) -> None:
        super()._build_networks(*args, **kwargs)
        activation = self.config["activation"]
        #: q(z2 | z1) and p(z1 | z2): Gaussian heads on small MLPs
        self.top_encoder = MLPEncoder(
            self.latent_dim, self.top_hidden_dims, self.top_latent_dim, activation, 1
        )
        self.top_prior = MLPEncoder(
            self.top_latent_dim, self.top_hidden_dims, self.latent_dim, activation, 1
        )

    def top_prior_dist(self, batch_shape: tuple[int, ...], device: torch.device) -> Any:
        """``p(z2) = N(0, I)`` with batch shape ``batch_shape``."""
        zeros = torch.zeros(*batch_shape, self.top_latent_dim, device=device)
        return dist.Normal(zeros, torch.ones_like(zeros)).to_event(1)

    def _model(
        self, x: torch.Tensor, context: torch.Tensor | None, num_data: int | None
    ) -> torch.Tensor:
        pyro.module(f"{self.pyro_name}.decoder", self.decoder)
        pyro.module(f"{self.pyro_name}.top_prior", self.top_prior)
        with self.data_plate(x, num_data):
            with poutine.scale(scale=self.beta):
                z2 = pyro.sample("z2", self.top_prior_dist((x.shape[0],), x.device))
                z1 = pyro.sample("z1", dist.Normal(*self.top_prior(z2)).to_event(1))
            return pyro.sample("x", self.observation_dist(self.decoder(z1)), obs=x)

    def _guide(
        self, x: torch.Tensor, context: torch.Tensor | None, num_data: int | None
    ) -> torch.Tensor:
        pyro.module(f"{self.pyro_name}.encoder", self.encoder)
        pyro.module(f"{self.pyro_name}.top_encoder", self.top_encoder)
        with self.data_plate(x, num_data):
            with poutine.scale(scale=self.beta):
                z1 = pyro.sample("z1", self.posterior(x))
                return pyro.sample("z2", dist.Normal(*self.top_encoder(z1)).to_event(1))

    def _layer_log_weights(
        self, x: torch.Tensor, num_samples: int
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per particle and point ``(num_samples, B)``: ``log p(x | z1)``,
        ``log q(z1 | x) - log p(z1 | z2)`` and ``log q(z2 | z1) - log p(z2)``."""
        q1 = self.posterior(x)
        z1 = q1.rsample((num_samples,))
        q2 = dist.Normal(*self.top_encoder(z1)).to_event(1)
        z2 = q2.rsample()
        p1 = dist.Normal(*self.top_prior(z2)).to_event(1)
        recon = self.observation_dist(self.decoder(z1)).log_prob(x)
        kl1 = q1.log_prob(z1) - p1.log_prob(z1)
        kl2 = q2.log_prob(z2) - self.top_prior_dist(z2.shape[:-1], x.device).log_prob(z2)
        return recon, kl1, kl2

    def _log_weights(
        self,
        x: torch.Tensor,
        context: torch.Tensor | None,
        num_samples: int,
        noise: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if noise is not None:
            raise ValueError("common_noise is not supported by the two-layer HierarchicalVAE.")
        recon, kl1, kl2 = self._layer_log_weights(x, num_samples)
        return recon - kl1 - kl2

    @torch.no_grad()
    def kl_per_layer(
        self, x: Any, *, num_samples: int = 10, batch_size: int = 1024, seed: int | None = None
    ) -> dict[str, float]:
        """Mean per data point (nats) of each layer's term of the ELBO, estimated with
        ``num_samples`` draws of the guide: ``{"z1": ..., "z2": ..., "recon": ...}``;
        ``recon - z1 - z2`` is the ELBO."""
        x = self._check_x("x", x)
        num_samples = check_positive_int("num_samples", num_samples)
        if seed is not None:
            pyro.set_rng_seed(seed)
        totals = torch.zeros(3)
        for batch, _ in self._batches(x, None, check_positive_int("batch_size", batch_size)):
            terms = self._layer_log_weights(batch, num_samples)
            totals += torch.stack([t.mean(0).sum().cpu() for t in terms])
        recon, kl1, kl2 = (totals / x.shape[0]).tolist()
        return {"recon": recon, "z1": kl1, "z2": kl2}

    def _draw_latent(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """``z1`` drawn through the hierarchy: ``z2 ~ N(0, I)``, ``z1 ~ p(z1 | z2)``."""
        z2 = torch.randn(n, self.top_latent_dim, generator=generator, device=self.device)
        loc, scale = self.top_prior(z2)
        return loc + scale * torch.randn(loc.shape, generator=generator, device=self.device)
