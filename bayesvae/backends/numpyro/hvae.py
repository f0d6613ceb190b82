"""NumPyro twin of :class:`bayesvae.models.HierarchicalVAE`: the two-layer model
``z2 ~ N(0, I)``, ``z1 | z2 ~ N(mu(z2), sigma(z2))``, ``x | z1 ~ p(x | decoder(z1))`` and the
bottom-up guide ``q(z1 | x) q(z2 | z1)``, with the torch model's four networks mirrored (weights
copied in, trained weights written back by :meth:`export_to`) and trained by the same jitted loop
as :class:`~bayesvae.backends.numpyro.vae.NumPyroVAE`: the ELBO, or the IWAE / Rényi bounds
whose importance weights are ``log p(x | z1) + log p(z1 | z2) + log p(z2) - log q(z1 | x) -
log q(z2 | z1)``."""

from __future__ import annotations

from typing import Any, ClassVar

from bayesvae.backends.numpyro.vae import (
    NumPyroVAE,
    gaussian_log_density,
    gaussian_mlp,
)

__all__ = ["NumPyroHierarchicalVAE"]


class NumPyroHierarchicalVAE(NumPyroVAE):
    """Jitted NumPyro training of a :class:`~bayesvae.models.HierarchicalVAE`'s model and guide
    (sites ``z2``, ``z1``, ``x``); :meth:`fit`, :meth:`log_likelihood` and :meth:`export_to` as
    for the one-layer twin. One guide draw takes ``latent_dim + top_latent_dim`` standard-normal
    numbers per row (``noise_dim``): ``z1``'s first, then ``z2``'s."""

    #: the mean-field ELBO's closed-form KL does not apply: z2's guide depends on z1's draw
    supported_elbos: ClassVar[tuple[str, ...]] = ("trace", "iwae", "renyi")

    def __init__(self, hvae: Any) -> None:
        super().__init__(hvae)
        self.top_latent_dim = hvae.top_latent_dim
        self.noise_dim = hvae.latent_dim + hvae.top_latent_dim

    def _more_networks(self, hvae: Any, state: dict[str, Any]) -> dict[str, Any]:
        """``q(z2 | z1)`` and ``p(z1 | z2)``, mirrored."""
        return {
            "top_encoder": gaussian_mlp(state, hvae.top_encoder.net, "top_encoder.net"),
            "top_prior": gaussian_mlp(state, hvae.top_prior.net, "top_prior.net"),
        }

    def model(self, x: Any, num_data: int) -> None:
        import jax.numpy as jnp
        import numpyro
        import numpyro.distributions as dist
        from numpyro.contrib.module import eqx_module

        decoder = eqx_module("decoder", self.networks["decoder"])
        top_prior = eqx_module("top_prior", self.networks["top_prior"])
        with numpyro.handlers.scale(scale=num_data / x.shape[0]), numpyro.plate("data", x.shape[0]):
            with numpyro.handlers.scale(scale=self.beta):
                z2 = numpyro.sample(
                    "z2", dist.Normal(jnp.zeros(self.top_latent_dim), 1.0).to_event(1)
                )
                z1 = numpyro.sample("z1", dist.Normal(*top_prior(z2)).to_event(1))
            numpyro.factor("x", self._log_likelihood(decoder(z1), x, decoder))

    def guide(self, x: Any, num_data: int) -> None:
        import numpyro
        import numpyro.distributions as dist
        from numpyro.contrib.module import eqx_module

        encoder = eqx_module("encoder", self.networks["encoder"])
        top_encoder = eqx_module("top_encoder", self.networks["top_encoder"])
        with numpyro.handlers.scale(scale=num_data / x.shape[0]), numpyro.plate("data", x.shape[0]):
            loc, scale = encoder(x)
            with numpyro.handlers.scale(scale=self.beta):
                z1 = numpyro.sample("z1", dist.Normal(loc, scale).to_event(1))
                numpyro.sample("z2", dist.Normal(*top_encoder(z1)).to_event(1))

    def _log_weights(self, networks: dict[str, Any], x: Any, eps: Any, beta: float = 1.0) -> Any:
        """``log p(x | z1) + beta (log p(z1 | z2) + log p(z2) - log q(z1 | x) - log q(z2 |
        z1))`` for guide draws made from ``eps (K, B or 1, latent_dim + top_latent_dim)``:
        ``z1 = loc(x) + scale(x) * eps[..., :latent_dim]``, then ``z2`` from ``q(z2 | z1)`` with
        the rest; ``x (B, ...)`` -> ``(K, B)``."""
        import jax.numpy as jnp

        eps1, eps2 = eps[..., : self.latent_dim], eps[..., self.latent_dim :]
        loc1, scale1 = networks["encoder"](x)
        z1 = loc1 + scale1 * eps1  # (K, B, latent_dim)
        loc2, scale2 = networks["top_encoder"](z1)
        z2 = loc2 + scale2 * eps2  # (K, B, top_latent_dim)
        log_q = gaussian_log_density(z1, loc1, scale1) + gaussian_log_density(z2, loc2, scale2)
        log_prior = gaussian_log_density(z2, jnp.zeros(()), jnp.ones(()))
        log_prior = log_prior + gaussian_log_density(z1, *networks["top_prior"](z2))
        log_lik = self._decoded_log_likelihood(networks["decoder"], z1, x)
        return log_lik + beta * (log_prior - log_q)
