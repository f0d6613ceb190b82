"""Adversarial Variational Bayes (Mescheder et al. 2017): a VAE whose guide is implicit.

Generative model: the VAE's, ``z ~ N(0, I)``, ``x | z ~ p(x | decoder(z))``.
Guide: ``z = g(x, eps)``, ``eps ~ N(0, I)``: noise fed to a network, a distribution with no
tractable density. Its KL term comes from a discriminator ``T(x, z)`` trained by logistic
regression to tell ``(x, z ~ q(z | x))`` from ``(x, z ~ p(z))``; at its optimum
``T*(x, z) = log q(z | x) - log p(z)``, the density ratio (the density-ratio view of KL
minimisation). The encoder and decoder maximise ``E_q[log p(x | z) - T(x, z)]``.

Both players train in the same Pyro step, with a plain ``Trace_ELBO``:

- the guide's site ``z`` is a ``Delta`` at ``g(x, eps)`` whose log density is the estimate
  ``T(x, z) + log p(z)`` with the discriminator's parameters held fixed, so the ELBO's
  ``log p(z) - log q(z | x)`` is ``-T(x, z)`` and its gradient reaches the encoder, not ``T``;
- a guide factor ``adversary`` adds the discriminator's logistic loss (on ``z`` held fixed, so
  only ``T`` learns from it) to the loss.

An implicit guide gives no importance weights, so ``log_likelihood`` and ``elbo`` use a
**Gaussian proposal** ``q'(z | x)`` (the VAE's amortized encoder) trained alongside, in the same
factor, on the ELBO of the current decoder held fixed: its bounds are valid bounds on the
decoder's ``log p(x)``, as tight as ``q'`` is good. The history's ``train_elbo`` includes the
adversary's terms; ``val_elbo`` is ``recon - T`` (the adversarial estimate of the ELBO).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pyro
import pyro.distributions as dist
import torch
from torch import nn
from torch.func import functional_call
from torch.nn import functional

from bayesvae.data.validation import check_positive_int
from bayesvae.models.vae import VAE, _as_shape, _mlp

__all__ = ["AdversarialVAE"]


def _frozen(module: nn.Module, *inputs: torch.Tensor) -> torch.Tensor:
    """``module(*inputs)`` with its parameters held fixed (gradients reach the inputs only)."""
    params = {name: p.detach() for name, p in module.named_parameters()}
    return functional_call(module, params, inputs)


class AdversarialVAE(VAE):
    """AVB: a VAE with an implicit guide and a discriminator (sites ``z``, ``x``; guide factor
    ``adversary``).

    Args:
        input_shape: size ``D`` of one data point (vector data).
        noise_dim: size of the guide's noise ``eps``.
        discriminator_hidden: hidden widths of ``T(x, z)``.
        **options: the other :class:`~bayesvae.models.VAE` options (latent_dim, hidden_dims,
            likelihood, gaussian_scale, activation, seed); the encoder is an MLP, with no flows
            and ``beta = 1``.

    ``encode(x)`` gives the mean and standard deviation of the implicit ``q(z | x)`` from
    ``num_noise`` draws; :meth:`sample_posterior` draws from it; ``log_likelihood``/``elbo`` use
    the Gaussian proposal (see the module docstring).
    """

    #: the guide's "density" is the discriminator's estimate: no PSIS, no bound sandwich
    guide_has_density = False
    supported_elbos = ("trace",)
    supported_elbos_reason = (
        "the implicit guide has no density: its KL comes from the discriminator, whose "
        "estimate enters through Trace_ELBO."
    )

    def __init__(
        self,
        input_shape: int | Sequence[int],
        *,
        noise_dim: int | None = None,
        discriminator_hidden: Sequence[int] = (256, 256),
        **options: Any,
    ) -> None:
        for name, allowed in (("encoder", "mlp"), ("flows", 0), ("beta", 1.0)):
            if options.get(name, allowed) != allowed:
                raise ValueError(f"AdversarialVAE needs {name}={allowed!r}, got {options[name]!r}.")
        if options.get("likelihood") == "gaussian" and options.get("gaussian_scale") is None:
            raise ValueError(
                "AdversarialVAE with likelihood='gaussian' needs a fixed gaussian_scale (the "
                "proposal trains against the decoder held fixed)."
            )
        super().__init__(input_shape, **options)
        latent = self.latent_dim
        noise = check_positive_int("noise_dim", latent if noise_dim is None else noise_dim)
        hidden = tuple(check_positive_int("discriminator_hidden", h) for h in discriminator_hidden)
        self.noise_dim = noise
        self.config.update(noise_dim=noise, discriminator_hidden=list(hidden))
        width = math.prod(_as_shape(input_shape))
        activation, seed = self.config["activation"], self.config["seed"]
        with torch.random.fork_rng(devices=[]):
            if seed is not None:
                torch.manual_seed(seed + 1)
            self.implicit = _mlp([width + noise, *self.config["hidden_dims"], latent], activation)
            self.discriminator = _mlp([width + latent, *hidden, 1], activation)

    # ----------------------------------------------------------------------------- Pyro program
    def implicit_sample(self, x: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        """``z = g(x, eps)``: ``x: (B, D)`` -> ``(B, latent_dim)`` (``noise``: ``eps``, drawn
        from N(0, I) by default)."""
        if noise is None:
            noise = torch.randn(*x.shape[:-1], self.noise_dim, device=x.device)
        return self.implicit(torch.cat([x, noise], -1))

    def log_ratio(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """The discriminator ``T(x, z)``, an estimate of ``log q(z | x) - log p(z)``: ``(B,)``."""
        return self.discriminator(torch.cat([x, z], -1)).squeeze(-1)

    def guide(self, x: torch.Tensor, *, num_data: int | None = None) -> torch.Tensor:
        """The implicit ``q(z | x)``, the discriminator's loss and the proposal's ELBO."""
        name = self.pyro_name
        pyro.module(f"{name}.implicit", self.implicit)
        pyro.module(f"{name}.discriminator", self.discriminator)
        pyro.module(f"{name}.encoder", self.encoder)
        prior = self.prior((x.shape[0],), x.device)
        with self.data_plate(x, num_data):
            z = self.implicit_sample(x)
            ratio = _frozen(self.discriminator, torch.cat([x, z], -1)).squeeze(-1)
            site = pyro.sample(
                "z", dist.Delta(z, log_density=ratio + prior.log_prob(z), event_dim=1)
            )
            # the discriminator: logistic regression of q's draws (held fixed) against p's
            from_prior = torch.randn_like(z)
            adversary = functional.softplus(-self.log_ratio(x, z.detach()))
            adversary = adversary + functional.softplus(self.log_ratio(x, from_prior))
            # the Gaussian proposal: the ELBO of the decoder held fixed
            proposal = dist.Normal(*self.encoder(x)).to_event(1)
            draw = proposal.rsample()
            decoded = _frozen(self.decoder, draw)
            proposal_elbo = (
                self.observation_dist(decoded).log_prob(x)
                + prior.log_prob(draw)
                - proposal.log_prob(draw)
            )
            # a guide factor is subtracted from the objective like log q: the loss gains it
            pyro.factor("adversary", adversary - proposal_elbo, has_rsample=True)
            return site

    # --------------------------------------------------------------------------------- queries
    @torch.no_grad()
    def sample_posterior(self, x: Any, num_samples: int = 1) -> torch.Tensor:
        """Draws of the implicit ``q(z | x)``: ``(num_samples, N, latent_dim)``."""
        x = self._check_x("x", x).to(self.device)
        num_samples = check_positive_int("num_samples", num_samples)
        return torch.stack([self.implicit_sample(x) for _ in range(num_samples)])

    @torch.no_grad()
    def encode(
        self, x: Any, y: Any = None, *, batch_size: int = 1024, num_noise: int = 64
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and standard deviation of the implicit ``q(z | x)`` over ``num_noise`` draws,
        each ``(N, latent_dim)``."""
        self._context(y, 0)
        x = self._check_x("x", x)
        parts = [
            self.sample_posterior(batch, num_noise)
            for batch, _ in self._batches(x, None, batch_size)
        ]
        draws = torch.cat(parts, 1)
        return draws.mean(0), draws.std(0)

    def proposal(self, x: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """The Gaussian proposal ``q'(z | x)`` behind ``log_likelihood``: ``(loc, scale)``."""
        return VAE.encode(self, x)
