"""Objectives by name, and the handler that weights latent sites (KL warm-up)."""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import torch
from pyro.distributions.util import is_identically_zero, scale_and_mask
from pyro.infer import ELBO, JitTrace_ELBO, Trace_ELBO, TraceEnum_ELBO, TraceMeanField_ELBO
from pyro.infer.enum import get_importance_trace
from pyro.infer.trace_elbo import _compute_log_r
from pyro.infer.trace_mean_field_elbo import check_fully_reparametrized
from pyro.infer.util import is_validation_enabled
from pyro.poutine.messenger import Messenger
from torch.distributions import kl_divergence

from bayesvae.data.validation import check_choice, check_positive_int

__all__ = [
    "OBJECTIVES",
    "make_elbo",
    "scale_latents",
    "LatentScaleMessenger",
    "quiet_jit_deprecation",
    "ImportanceWeightedELBO",
    "SyncFreeTrace_ELBO",
    "SyncFreeTraceMeanField_ELBO",
    "SyncFreeJitTrace_ELBO",
    "ELBO_NAMES",
    "backward_loss",
]


# Pyro's Trace_ELBO and TraceMeanField_ELBO turn each site's log density into a Python float
# (``.item()``) to report the loss, and their ``differentiable_loss`` asks whether the loss and
# its gradient are NaN (``bool(tensor)``). On a GPU each of these waits for the device: five or
# six waits per step for a VAE, which leave a small-batch step mostly idle. The two objectives
# below compute the same loss and gradients with tensors only; ``bayesvae.fit`` checks the loss
# for NaN itself (every step on the CPU, once an epoch on CUDA). Their ``loss`` and
# ``loss_and_grads`` (used by ``pyro.infer.SVI``) are Pyro's. The JIT objective gets the same
# treatment (and a gradient fix, see below). TraceEnum_ELBO is left as it is:
# its Dice estimator itself asks the device whether any probability is zero.


def _detached(value: Any) -> Any:
    return value.detach() if torch.is_tensor(value) else value


def _with_gradient_of(value: Any, surrogate: Any) -> Any:
    """A tensor equal to ``value`` whose gradient is ``surrogate``'s."""
    if not torch.is_tensor(surrogate):
        return value
    return value + (surrogate - surrogate.detach())


class SyncFreeTrace_ELBO(Trace_ELBO):
    """:class:`pyro.infer.Trace_ELBO` whose :meth:`differentiable_loss` never waits for the
    device: same value (the ELBO estimate) and same gradient (reparameterized sites by
    differentiation, others by score-function terms against the downstream log-ratio)."""

    def differentiable_loss(self, model: Any, guide: Any, *args: Any, **kwargs: Any) -> Any:
        loss: Any = 0.0
        surrogate_loss: Any = 0.0
        for model_trace, guide_trace in self._get_traces(model, guide, args, kwargs):
            elbo, surrogate_elbo = self._elbo_terms(model_trace, guide_trace)
            loss = loss - elbo / self.num_particles
            surrogate_loss = surrogate_loss - surrogate_elbo / self.num_particles
        return _with_gradient_of(loss, surrogate_loss)

    @staticmethod
    def _elbo_terms(model_trace: Any, guide_trace: Any) -> tuple[Any, Any]:
        """(ELBO estimate, detached; a surrogate with the ELBO's gradient) of one particle."""
        elbo: Any = 0.0
        surrogate: Any = 0.0
        log_ratio = None
        for site in model_trace.nodes.values():
            if site["type"] == "sample":
                elbo = elbo + _detached(site["log_prob_sum"])
                surrogate = surrogate + site["log_prob_sum"]
        for site in guide_trace.nodes.values():
            if site["type"] != "sample":
                continue
            elbo = elbo - _detached(site["log_prob_sum"])
            _, score_function, entropy = site["score_parts"]
            if not is_identically_zero(entropy):
                surrogate = surrogate - entropy.sum()
            if not is_identically_zero(score_function):  # a site without rsample
                if log_ratio is None:
                    log_ratio = _compute_log_r(model_trace, guide_trace)
                downstream = log_ratio.sum_to(site["cond_indep_stack"])
                surrogate = surrogate + (downstream * score_function).sum()
        return elbo, surrogate


class SyncFreeJitTrace_ELBO(JitTrace_ELBO):
    """:class:`pyro.infer.JitTrace_ELBO` whose :meth:`differentiable_loss` never waits for the
    device and has the ELBO's gradient.

    Pyro's (1.9) returns ``loss + (surrogate - surrogate.detach())`` with ``loss`` still
    attached to the graph, so its gradient is the loss's plus the surrogate's: twice the ELBO's
    for a reparameterized model (Adam hardly notices; gradient clipping and logged norms do).
    ``loss_and_grads``, which ``pyro.infer.SVI`` calls, was right and is kept."""

    def differentiable_loss(self, model: Any, guide: Any, *args: Any, **kwargs: Any) -> Any:
        loss, surrogate_loss = self.loss_and_surrogate_loss(model, guide, *args, **kwargs)
        return _with_gradient_of(_detached(loss), surrogate_loss)


class SyncFreeTraceMeanField_ELBO(TraceMeanField_ELBO):
    """:class:`pyro.infer.TraceMeanField_ELBO` (analytic KL where torch has it) whose
    :meth:`differentiable_loss` never waits for the device."""

    def differentiable_loss(self, model: Any, guide: Any, *args: Any, **kwargs: Any) -> Any:
        loss: Any = 0.0
        for model_trace, guide_trace in self._get_traces(model, guide, args, kwargs):
            loss = loss - self._elbo(model_trace, guide_trace) / self.num_particles
        return loss

    @staticmethod
    def _elbo(model_trace: Any, guide_trace: Any) -> Any:
        elbo: Any = 0.0
        for name, site in model_trace.nodes.items():
            if site["type"] != "sample":
                continue
            if site["is_observed"]:
                elbo = elbo + site["log_prob_sum"]
                continue
            guide_site = guide_trace.nodes[name]
            if is_validation_enabled():
                check_fully_reparametrized(guide_site)
            try:
                kl = kl_divergence(guide_site["fn"], site["fn"])
            except NotImplementedError:  # no closed form: a one-sample estimate
                entropy = guide_site["score_parts"].entropy_term
                elbo = elbo + site["log_prob_sum"] - entropy.sum()
                continue
            kl = scale_and_mask(kl, scale=guide_site["scale"], mask=guide_site["mask"])
            if torch.is_tensor(kl):
                elbo = elbo - kl.sum()
            else:
                elbo = elbo - kl * guide_site["fn"].batch_shape.numel()
        for name, site in guide_trace.nodes.items():  # auxiliary guide sites
            if site["type"] == "sample" and name not in model_trace.nodes:
                elbo = elbo - site["score_parts"].entropy_term.sum()
        return elbo


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
    "trace": SyncFreeTrace_ELBO,
    "meanfield": SyncFreeTraceMeanField_ELBO,
    "jit": SyncFreeJitTrace_ELBO,
    "enum": TraceEnum_ELBO,
    "iwae": ImportanceWeightedELBO,
}


#: the names ``make_elbo`` and ``fit(elbo=...)`` accept
ELBO_NAMES = tuple(OBJECTIVES)


def backward_loss(objective: ELBO, model: Any, guide: Any, *args: Any, **kwargs: Any) -> Any:
    """One step's loss (a detached tensor), its gradient accumulated into the parameters.

    Objectives with ``differentiable_loss`` (bayesvae's, Trace/TraceEnum/TraceMeanField ELBOs)
    stay on the device; others (e.g. Pyro's ``RenyiELBO``, ``TraceGraph_ELBO``) through their
    ``loss_and_grads``, which reads the loss as a float.
    """
    if hasattr(type(objective), "differentiable_loss"):  # a Pyro objective, not the model
        loss = objective.differentiable_loss(model, guide, *args, **kwargs)
        loss.backward()
        return loss.detach()
    return torch.as_tensor(float(objective.loss_and_grads(model, guide, *args, **kwargs)))


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
