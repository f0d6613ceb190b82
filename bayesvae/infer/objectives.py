"""Objectives by name, and the handler that weights latent sites (KL warm-up)."""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import torch
from pyro.infer import ELBO, JitTrace_ELBO, Trace_ELBO, TraceEnum_ELBO, TraceMeanField_ELBO
from pyro.infer.enum import get_importance_trace
from pyro.poutine.messenger import Messenger

from bayesvae.data.validation import check_choice, check_positive_int

__all__ = [
    "OBJECTIVES",
    "make_elbo",
    "scale_latents",
    "LatentScaleMessenger",
    "quiet_jit_deprecation",
    "ImportanceWeightedELBO",
]


class ImportanceWeightedELBO(ELBO):
    """The importance-weighted bound of Burda et al. (2016), vectorized over ``K`` particles:

    ``L_K = sum_n E[log (1/K) sum_k p(x_n, z_nk) / q(z_nk | x_n)]``, ``z_nk ~ q(z | x_n)``,

    the same bound as ``pyro.infer.RenyiELBO(alpha=0)``, with two differences that matter for
    minibatch training: the weights are formed per data point with the log densities *unscaled*,
    and a plate's subsampling factor ``N / B`` multiplies the bound after the ``logsumexp``
    (RenyiELBO scales the log densities inside it, which sharpens the weights by ``N / B``);
    and it has ``differentiable_loss``. Other scales (β, KL warm-up) stay inside, on their sites.
    ``K = 1`` is the ELBO; ``L_K`` rises with ``K`` towards ``log p(x)``.

    Needs every sample site in the same plates (one weight per data point), reparameterized guide
    sites, and no enumeration: true of the VAEs here.
    """

    def __init__(self, num_particles: int = 5, max_plate_nesting: float = float("inf")) -> None:
        super().__init__(
            num_particles=check_positive_int("num_particles", num_particles),
            max_plate_nesting=max_plate_nesting,
            vectorize_particles=True,
        )

    def _get_trace(self, model: Any, guide: Any, args: Any, kwargs: Any) -> Any:
        return get_importance_trace("flat", self.max_plate_nesting, model, guide, args, kwargs)

    def _log_weights(
        self, model: Any, guide: Any, args: Any, kwargs: Any
    ) -> tuple[torch.Tensor, float]:
        """Per-point log importance weights ``(K, *plate_shape)`` and the subsampling factor."""
        if self.max_plate_nesting == float("inf"):
            self._guess_max_plate_nesting(model, guide, args, kwargs)
        model_trace, guide_trace = self._get_vectorized_trace(model, guide, args, kwargs)
        log_weights: Any = 0.0
        plates = outer_scale = None
        for trace, sign in ((model_trace, 1.0), (guide_trace, -1.0)):
            for name, site in trace.nodes.items():
                if site["type"] != "sample" or (sign < 0 and site["is_observed"]):
                    continue
                if site["infer"].get("enumerate"):
                    raise ValueError(f"elbo='iwae' cannot enumerate site {name!r}.")
                if sign < 0 and not site["fn"].has_rsample:
                    raise ValueError(
                        f"elbo='iwae' needs reparameterized guide sites; {name!r} is not."
                    )
                frames = [f for f in site["cond_indep_stack"] if f.vectorized]
                site_plates = sorted((f.name, f.dim) for f in frames)
                subsample = math.prod(
                    f.full_size / f.size for f in frames if f.full_size is not None and f.size
                )
                if plates is None:
                    plates, outer_scale = site_plates, subsample
                elif site_plates != plates:
                    raise ValueError(
                        f"elbo='iwae' needs every sample site in the same plates; site {name!r} "
                        f"is in {[p for p, _ in site_plates]}, others in {[p for p, _ in plates]}."
                    )
                log_prob = site["unscaled_log_prob"]
                if site["mask"] is not None:
                    log_prob = log_prob * site["mask"]
                log_weights = log_weights + sign * (site["scale"] / subsample) * log_prob
        if not torch.is_tensor(log_weights):
            raise ValueError("elbo='iwae' found no sample sites in the model.")
        return log_weights, float(outer_scale or 1.0)

    def differentiable_loss(self, model: Any, guide: Any, *args: Any, **kwargs: Any) -> Any:
        """``-L_K`` (scaled to the full data set), differentiable by reparameterization."""
        log_weights, outer_scale = self._log_weights(model, guide, args, kwargs)
        # Pyro counts the particle plate in max_plate_nesting (its dim is -max_plate_nesting);
        # K = 1 runs without it.
        particle_dim = -int(self.max_plate_nesting)
        if self.num_particles == 1:
            log_weights, particle_dim = log_weights.unsqueeze(0), 0
        bound = torch.logsumexp(log_weights, dim=particle_dim) - math.log(self.num_particles)
        return -outer_scale * bound.sum()

    def loss(self, model: Any, guide: Any, *args: Any, **kwargs: Any) -> float:
        """``-L_K`` as a float."""
        with torch.no_grad():
            return float(self.differentiable_loss(model, guide, *args, **kwargs))

    def loss_and_grads(self, model: Any, guide: Any, *args: Any, **kwargs: Any) -> float:
        """``-L_K``, with its gradients accumulated into the parameters (for ``pyro.infer.SVI``)."""
        loss = self.differentiable_loss(model, guide, *args, **kwargs)
        loss.backward()
        return float(loss.detach())


#: Objective names accepted by ``bayesvae.fit(..., elbo=NAME)``.
OBJECTIVES: dict[str, type[ELBO]] = {
    "trace": Trace_ELBO,
    "meanfield": TraceMeanField_ELBO,
    "jit": JitTrace_ELBO,
    "enum": TraceEnum_ELBO,
    "iwae": ImportanceWeightedELBO,
}


def make_elbo(
    name: str,
    *,
    num_particles: int = 1,
    vectorize_particles: bool = True,
    max_plate_nesting: int | None = None,
    **options: Any,
) -> ELBO:
    """Build a Pyro ELBO from its name (see :data:`OBJECTIVES`).

    ``num_particles > 1`` draws several samples per step, vectorized over a new leftmost batch
    dimension when ``vectorize_particles`` (the model must then have static structure).
    ``"iwae"`` uses ``num_particles`` as the bound's ``K`` (always vectorized).
    """
    check_choice("elbo", name, tuple(OBJECTIVES))
    num_particles = check_positive_int("num_particles", num_particles)
    kwargs: dict[str, Any] = dict(
        num_particles=num_particles, vectorize_particles=vectorize_particles and num_particles > 1
    )
    if name == "iwae":
        kwargs = {"num_particles": num_particles}
    if max_plate_nesting is not None:
        kwargs["max_plate_nesting"] = max_plate_nesting
    if name == "jit":
        kwargs["ignore_jit_warnings"] = True
    kwargs.update(options)
    return OBJECTIVES[name](**kwargs)


class LatentScaleMessenger(Messenger):
    """Multiply the log-density scale of every *latent* sample site by ``weight()``.

    Observed sites are left alone, so wrapping both model and guide weights the KL part of the
    ELBO: ``E_q[log p(x|z)] - w * KL(q(z|x) || p(z))``. This is ``poutine.scale`` restricted to
    latent sites; ``weight`` is a callable so one wrapped model serves a whole schedule.
    """

    def __init__(self, weight: Callable[[], float]) -> None:
        super().__init__()
        self.weight = weight

    def _process_message(self, msg: dict[str, Any]) -> None:
        if msg["type"] == "sample" and not msg["is_observed"]:
            msg["scale"] = self.weight() * msg["scale"]


def scale_latents(fn: Callable[..., Any], weight: Callable[[], float]) -> Callable[..., Any]:
    """``fn`` (a model or guide) with its latent sites' log densities scaled by ``weight()``."""
    return LatentScaleMessenger(weight)(fn)


@contextlib.contextmanager
def quiet_jit_deprecation(active: bool = True) -> Iterator[None]:
    """Silence torch's "`torch.jit.trace` is deprecated" warning that Pyro's JitTrace_ELBO
    triggers on every compile (torch >= 2.10); other warnings pass through."""
    if not active:
        yield
        return
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=r".*torch\.jit\.trace.* is deprecated", category=DeprecationWarning
        )
        yield
