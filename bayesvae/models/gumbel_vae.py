"""A VAE with discrete latents, trained through the Gumbel-softmax (Concrete) relaxation
(Jang et al. 2017; Maddison et al. 2017).

The latent is ``num_variables`` categorical variables of ``categories`` classes each. Training
relaxes them: model ``c ~ Concrete(τ, uniform)``, guide ``q(c | x) = Concrete(τ, logits(x))``,
both reparameterized, and the decoder reads the relaxed one-hot vectors. The temperature ``τ``
anneals per training step, ``τ_t = max(τ_min, τ_0 exp(-rate t))``, so the relaxation hardens as
training goes on; generation uses hard one-hot draws.

The site ``z`` holds the *log* of the relaxed one-hot vector (``ExpRelaxedCategorical``, the
base of ``RelaxedOneHotCategorical``): low temperatures underflow the simplex coordinates to 0
in float32, where the simplex density is ``-inf``; in log space they stay finite. The KL term is
the same either way (KL is invariant under the bijection ``exp``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from pyro.distributions.torch_distribution import TorchDistributionMixin
from torch.distributions import relaxed_categorical

from bayesvae.data.validation import (
    as_float_tensor,
    check_non_negative_number,
    check_positive_int,
    check_positive_number,
)
from bayesvae.models.vae import VAE

__all__ = ["GumbelSoftmaxVAE", "ExpRelaxedCategorical"]


class ExpRelaxedCategorical(relaxed_categorical.ExpRelaxedCategorical, TorchDistributionMixin):
    """Pyro-usable ``torch.distributions.ExpRelaxedCategorical``: the log of a Concrete
    (relaxed one-hot) sample, event shape ``(categories,)``."""


class GumbelSoftmaxVAE(VAE):
    """Discrete-latent VAE as a Pyro model/guide pair (site ``z``: ``(B, num_variables,
    categories)`` log relaxed one-hot vectors).

    Args:
        input_shape: shape of one data point (as :class:`~bayesvae.models.VAE`).
        num_variables: number of categorical latent variables.
        categories: classes per variable.
        temperature: initial temperature ``τ_0`` (> 0).
        min_temperature: floor ``τ_min`` of the schedule (> 0, at most ``temperature``).
        anneal_rate: per-step decay rate of the schedule (>= 0; 0 keeps ``τ_0``).
        **options: the other :class:`~bayesvae.models.VAE` options (hidden_dims, encoder,
            likelihood, beta, ...); flows are not offered for discrete latents.
    """

    continuous_latent = False

    def __init__(
        self,
        input_shape: int | Sequence[int],
        *,
        num_variables: int = 20,
        categories: int = 10,
        temperature: float = 1.0,
        min_temperature: float = 0.5,
        anneal_rate: float = 1e-4,
        **options: Any,
    ) -> None:
        self.num_variables = check_positive_int("num_variables", num_variables)
        self.categories = check_positive_int("categories", categories)
        if self.categories < 2:
            raise ValueError(f"categories must be at least 2, got {categories}.")
        self.initial_temperature = check_positive_number("temperature", temperature)
        self.min_temperature = check_positive_number("min_temperature", min_temperature)
        if self.min_temperature > self.initial_temperature:
            raise ValueError(
                f"min_temperature ({min_temperature}) must not exceed temperature ({temperature})."
            )
        self.anneal_rate = check_non_negative_number("anneal_rate", anneal_rate)
        if options.get("flows", 0):
            raise ValueError("GumbelSoftmaxVAE takes no flows; use flows=0.")
        if "latent_dim" in options:
            raise ValueError(
                "GumbelSoftmaxVAE sets its latent size from num_variables x categories; "
                "do not pass latent_dim."
            )
        super().__init__(input_shape, latent_dim=self.num_variables * self.categories, **options)
        del self.config["latent_dim"]
        self.config.update(
            num_variables=self.num_variables,
            categories=self.categories,
            temperature=self.initial_temperature,
            min_temperature=self.min_temperature,
            anneal_rate=self.anneal_rate,
        )
        #: training steps taken (the guide counts them); saved with the model, so a resumed or
        #: reloaded model continues the temperature schedule where it was
        self.register_buffer("anneal_step", torch.zeros((), dtype=torch.float64))

    def _build_networks(self, *args: Any, **kwargs: Any) -> None:
        super()._build_networks(*args, encoder_outputs=self.latent_dim, **kwargs)

    @property
    def temperature(self) -> float:
        """The current temperature ``max(τ_min, τ_0 exp(-rate t))`` after ``t`` training steps."""
        return float(self._annealed_temperature())

    def _annealed_temperature(self) -> torch.Tensor:
        """:attr:`temperature` as a float64 tensor on the model's device: the model and guide
        use it there, since reading the step count into Python would make every training step
        wait for a GPU."""
        decayed = self.initial_temperature * torch.exp(-self.anneal_rate * self.anneal_step)
        return decayed.clamp(min=self.min_temperature)

    def _temperature_tensor(self) -> torch.Tensor:
        return self._annealed_temperature().to(torch.get_default_dtype())

    def prior(self, batch_shape: tuple[int, ...], device: torch.device) -> Any:
        """Uniform Concrete prior, batch ``batch_shape``, event ``(num_variables, categories)``."""
        logits = torch.zeros(*batch_shape, self.num_variables, self.categories, device=device)
        return ExpRelaxedCategorical(self._temperature_tensor(), logits=logits).to_event(1)

    def posterior(self, x: torch.Tensor, context: torch.Tensor | None = None) -> Any:
        """``q(z | x)``: Concrete with the encoder's logits, batch ``(B,)``."""
        logits = self.encoder(x, context).reshape(*x.shape[:1], self.num_variables, -1)
        return ExpRelaxedCategorical(self._temperature_tensor(), logits=logits).to_event(1)

    def _decoder_logits(self, z: torch.Tensor, context: torch.Tensor | None) -> torch.Tensor:
        """Decoder output for log relaxed one-hot ``z: (..., num_variables, categories)``."""
        return self.decoder(z.exp().flatten(start_dim=-2), context)

    def _guide(
        self, x: torch.Tensor, context: torch.Tensor | None, num_data: int | None
    ) -> torch.Tensor:
        if self.training and torch.is_grad_enabled():  # one more step of the schedule
            self.anneal_step += 1
        return super()._guide(x, context, num_data)

    # --------------------------------------------------------------------------------- queries
    @torch.no_grad()
    def encode(self, x: Any, y: Any = None, *, batch_size: int = 1024) -> torch.Tensor:  # type: ignore[override]
        """Class probabilities of ``q``'s logits: ``x: (N, *input_shape)`` ->
        ``(N, num_variables, categories)``."""
        x = self._check_x("x", x)
        self._context(y, x.shape[0])
        parts = [
            self.encoder(batch, None).reshape(batch.shape[0], self.num_variables, -1)
            for batch, _ in self._batches(x, None, batch_size)
        ]
        return torch.cat(parts).softmax(-1)

    def _check_z(self, z: Any) -> torch.Tensor:
        z = as_float_tensor("z", z).to(self.device)
        shape = (self.num_variables, self.categories)
        if z.dim() == 3 and tuple(z.shape[1:]) == shape:
            return z.flatten(start_dim=1)
        if z.dim() == 2 and z.shape[1] == self.latent_dim:
            return z
        raise ValueError(
            f"z must be one-hot (or probability) rows of shape (N, {shape[0]}, {shape[1]}) or "
            f"(N, {self.latent_dim}), got {tuple(z.shape)}."
        )

    @torch.no_grad()
    def reconstruct(self, x: Any, y: Any = None, *, batch_size: int = 1024) -> torch.Tensor:
        """Decode each variable's most probable class: ``(N, *input_shape)``."""
        probs = self.encode(x, y, batch_size=batch_size)
        one_hot = torch.nn.functional.one_hot(probs.argmax(-1), self.categories).float()
        return self.decode(one_hot, y)

    def _draw_latent(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """Hard one-hot draws from the uniform prior, ``(n, num_variables * categories)``."""
        classes = torch.randint(
            self.categories, (n, self.num_variables), generator=generator, device=self.device
        )
        return torch.nn.functional.one_hot(classes, self.categories).float().flatten(1)
