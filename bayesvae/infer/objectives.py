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

from bayesvae.data.validation import check_choice, check_number, check_positive_int

__all__ = [
    "OBJECTIVES",
    "make_elbo",
    "scale_latents",
    "LatentScaleMessenger",
    "quiet_jit_deprecation",
    "ImportanceWeightedELBO",
    "RenyiBound",
    "ChiUpperBound",
    "renyi_bound",
    "SyncFreeTrace_ELBO",
    "SyncFreeTraceMeanField_ELBO",
    "SyncFreeJitTrace_ELBO",
    "ELBO_NAMES",
    "PARTICLE_BOUNDS",
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


class _ParticleBound(ELBO):
    """Bounds built from ``K`` vectorized importance weights ``w_k = p(x, z_k) / q(z_k | x)``.

    The log weights are formed per data point when every sample site sits in the same plates (a
    VAE's ``z`` and ``x``): with the log densities *unscaled*, and a plate's subsampling factor
    ``N / B`` applied to the bound after the ``logsumexp`` (Pyro's ``RenyiELBO`` scales the log
    densities inside it, which sharpens the weights by ``N / B``). Otherwise (a program with global
    latents) there is one weight for the whole data set, which needs full-data steps. Other scales
    (β, KL warm-up) stay inside, on their sites. Needs reparameterized guide sites and no
    enumeration.
    """

    #: the objective's name in error messages
    label = "bound"

    def __init__(self, num_particles: int = 5, max_plate_nesting: float = float("inf")) -> None:
        super().__init__(
            num_particles=check_positive_int("num_particles", num_particles),
            max_plate_nesting=max_plate_nesting,
            vectorize_particles=True,
        )

    def _get_trace(self, model: Any, guide: Any, args: Any, kwargs: Any) -> Any:
        return get_importance_trace("flat", self.max_plate_nesting, model, guide, args, kwargs)

    def _traces(self, model: Any, guide: Any, args: Any, kwargs: Any) -> tuple[Any, Any]:
        if self.max_plate_nesting == float("inf"):
            self._guess_max_plate_nesting(model, guide, args, kwargs)
        return self._get_vectorized_trace(model, guide, args, kwargs)

    def _log_weights(
        self, model: Any, guide: Any, args: Any, kwargs: Any
    ) -> tuple[torch.Tensor, float]:
        """Log importance weights ``(K, *plate_shape)`` (per data point) or ``(K,)`` (one for the
        data set), and the subsampling factor to apply to the bound."""
        model_trace, guide_trace = self._traces(model, guide, args, kwargs)
        self._check_traces(model_trace, guide_trace)
        sites = []
        for trace, sign in ((model_trace, 1.0), (guide_trace, -1.0)):
            for name, site in trace.nodes.items():
                if site["type"] != "sample" or (sign < 0 and site["is_observed"]):
                    continue
                if site["infer"].get("enumerate"):
                    raise ValueError(f"elbo={self.label!r} cannot enumerate site {name!r}.")
                if sign < 0 and not site["fn"].has_rsample:
                    raise ValueError(
                        f"elbo={self.label!r} needs reparameterized guide sites; {name!r} is not."
                    )
                frames = [f for f in site["cond_indep_stack"] if f.vectorized]
                plates = sorted((f.name, f.dim) for f in frames)
                subsample = math.prod(
                    f.full_size / f.size for f in frames if f.full_size is not None and f.size
                )
                sites.append((name, site, sign, plates, subsample))
        if not sites:
            raise ValueError(f"elbo={self.label!r} found no sample sites in the model.")
        if all(plates == sites[0][3] for _, _, _, plates, _ in sites):
            log_weights: Any = 0.0
            for _, site, sign, _, subsample in sites:
                log_prob = site["unscaled_log_prob"]
                if site["mask"] is not None:
                    log_prob = log_prob * site["mask"]
                log_weights = log_weights + sign * (site["scale"] / subsample) * log_prob
            return self._with_particle_dim(log_weights), float(sites[0][4] or 1.0)
        # sites in different plates: one weight for the whole data set
        subsampled = [name for name, *_, subsample in sites if subsample != 1]
        if subsampled:
            raise ValueError(
                f"elbo={self.label!r} needs every sample site in the same plates, or full-data "
                f"steps; sites {subsampled} are subsampled while others are in other plates."
            )
        total: Any = 0.0
        for _, site, sign, _, _ in sites:
            total = total + sign * self._sum_to_particles(site["log_prob"])
        return total, 1.0

    def _check_traces(self, model_trace: Any, guide_trace: Any) -> None:
        """Refuse traces the objective does not fit (default: accept every one)."""

    def _with_particle_dim(self, log_weights: torch.Tensor) -> torch.Tensor:
        """Per-point weights with the particles moved to dim 0 (``K = 1`` runs without the
        particle plate, whose dim is otherwise ``-max_plate_nesting``)."""
        if self.num_particles == 1:
            return log_weights.unsqueeze(0)
        return log_weights.movedim(-int(self.max_plate_nesting), 0)

    def _sum_to_particles(self, log_prob: Any) -> torch.Tensor:
        """A site's log density summed over every dim but the particles': ``(K,)``."""
        if self.num_particles == 1:
            return torch.as_tensor(log_prob).sum().reshape(1)
        nesting = int(self.max_plate_nesting)
        log_prob = torch.as_tensor(log_prob)
        log_prob = log_prob.reshape((1,) * max(0, nesting - log_prob.dim()) + log_prob.shape)
        per_particle = log_prob.flatten(start_dim=log_prob.dim() - nesting + 1).sum(-1)
        return per_particle.reshape(-1).expand(self.num_particles)

    def bound(self, log_weights: torch.Tensor) -> torch.Tensor:
        """The bound per weight group from log weights ``(K, ...)`` -> ``(...)``."""
        raise NotImplementedError

    def differentiable_loss(self, model: Any, guide: Any, *args: Any, **kwargs: Any) -> Any:
        """The negative bound (scaled to the full data set), differentiable by
        reparameterization."""
        log_weights, outer_scale = self._log_weights(model, guide, args, kwargs)
        return -outer_scale * self.bound(log_weights).sum()

    def loss(self, model: Any, guide: Any, *args: Any, **kwargs: Any) -> float:
        """The loss as a float."""
        with torch.no_grad():
            return float(self.differentiable_loss(model, guide, *args, **kwargs))

    def loss_and_grads(self, model: Any, guide: Any, *args: Any, **kwargs: Any) -> float:
        """The loss, with its gradients accumulated into the parameters (for
        ``pyro.infer.SVI``)."""
        loss = self.differentiable_loss(model, guide, *args, **kwargs)
        loss.backward()
        return float(loss.detach())


def renyi_bound(log_weights: torch.Tensor, alpha: float) -> torch.Tensor:
    """The variational Rényi bound from log weights ``(K, ...)`` -> ``(...)``:
    ``L_α = log((1/K) Σ_k w_k^(1-α)) / (1 - α)``; ``α = 1`` is the ELBO (the mean log weight),
    ``α = 0`` the importance-weighted bound, ``α = -1`` the χ² upper bound (CUBO)."""
    if alpha == 1.0:
        return log_weights.mean(0)
    k = log_weights.shape[0]
    return (torch.logsumexp((1.0 - alpha) * log_weights, dim=0) - math.log(k)) / (1.0 - alpha)


class RenyiBound(_ParticleBound):
    """The variational Rényi (VR) bound of Li & Turner (2016), vectorized over ``K`` particles:

    ``L_α = sum_n log((1/K) sum_k w_nk^(1-α)) / (1 - α)``, ``w_nk = p(x_n, z_nk) / q(z_nk | x_n)``.

    ``α = 0`` is the importance-weighted bound, ``α → 1`` the ELBO; for ``α >= 0`` it is a lower
    bound on ``log p(x)`` that falls as ``α`` rises (for the same draws it is a power mean of the
    weights, monotone in ``α``); ``α < 0`` gives upper bounds as ``K`` grows. Minibatch-correct
    like the IWAE bound (see :class:`_ParticleBound`).
    """

    label = "renyi"

    def __init__(
        self,
        num_particles: int = 5,
        max_plate_nesting: float = float("inf"),
        *,
        alpha: float = 0.5,
    ) -> None:
        super().__init__(num_particles, max_plate_nesting)
        self.alpha = check_number("alpha", alpha)

    def bound(self, log_weights: torch.Tensor) -> torch.Tensor:
        return renyi_bound(log_weights, self.alpha)


class ImportanceWeightedELBO(RenyiBound):
    """The importance-weighted bound of Burda et al. (2016), vectorized over ``K`` particles:

    ``L_K = sum_n E[log (1/K) sum_k p(x_n, z_nk) / q(z_nk | x_n)]``, ``z_nk ~ q(z | x_n)``,

    the Rényi bound at ``α = 0`` (the same bound as ``pyro.infer.RenyiELBO(alpha=0)``, but with
    per-point weights: see :class:`_ParticleBound`), and with ``differentiable_loss``.
    ``K = 1`` is the ELBO; ``L_K`` rises with ``K`` towards ``log p(x)``.
    """

    label = "iwae"

    def __init__(self, num_particles: int = 5, max_plate_nesting: float = float("inf")) -> None:
        super().__init__(num_particles, max_plate_nesting, alpha=0.0)


class ChiUpperBound(_ParticleBound):
    """The χ² upper bound of Dieng et al. (2017, CHIVI), minimised to fit a guide:

    ``CUBO_2 = sum_n (1/2) log((1/K) sum_k w_nk^2)`` (the Rényi bound at ``α = -1``), which is
    ``>= log p(x)`` as ``K`` grows; minimising it makes the guide cover the posterior (mass
    covering, where the ELBO is mode seeking).

    The gradient is that of the exponentiated objective ``exp(2 CUBO)`` (an unbiased estimate,
    unlike the log's), computed stably per data point from ``exp(2 (log w_k - max_k log w_k))``;
    the loss value is the CUBO estimate itself (``train_elbo`` in the history is ``-CUBO``).

    Start from a guide *wider* than the posterior (``AutoNormal(model, init_scale=...)``, or a
    guide first fitted by the ELBO and widened): where ``q`` is narrower than ``1/√2`` of the
    posterior the χ² is infinite, and its finite-sample gradient narrows ``q`` further.

    It fits a guide to a *fixed* model: minimising an upper bound over the model's own parameters
    would lower ``p(x)``, so a model with learnable parameters (a VAE's decoder) is refused;
    train those with the ELBO and use :func:`bayesvae.diagnostics.sandwich` to read the CUBO.
    """

    label = "cubo"
    power = 2.0

    def bound(self, log_weights: torch.Tensor) -> torch.Tensor:
        return renyi_bound(log_weights, 1.0 - self.power)

    def _check_traces(self, model_trace: Any, guide_trace: Any) -> None:
        learnable = sorted(
            name
            for name, site in model_trace.nodes.items()
            if site["type"] == "param"
            and name not in guide_trace.nodes
            and torch.is_tensor(site["value"])
            and site["value"].requires_grad
        )
        if learnable:
            raise ValueError(
                f"elbo='cubo' fits a guide to a fixed model, but the model has learnable "
                f"parameters {learnable[:5]}; train them with elbo='trace' (an upper bound "
                "minimised over the model would lower p(x)), then read the CUBO with "
                "bayesvae.diagnostics.sandwich."
            )

    def differentiable_loss(self, model: Any, guide: Any, *args: Any, **kwargs: Any) -> Any:
        """``CUBO`` (scaled to the full data set) with the exponentiated objective's gradient."""
        log_weights, outer_scale = self._log_weights(model, guide, args, kwargs)
        n = self.power
        shift = log_weights.detach().max(dim=0).values
        surrogate = torch.exp(n * (log_weights - shift)).mean(0) / n
        value = self.bound(log_weights.detach())
        return outer_scale * _with_gradient_of(value, surrogate).sum()


#: Objective names accepted by ``bayesvae.fit(..., elbo=NAME)``.
OBJECTIVES: dict[str, type[ELBO]] = {
    "trace": SyncFreeTrace_ELBO,
    "meanfield": SyncFreeTraceMeanField_ELBO,
    "jit": SyncFreeJitTrace_ELBO,
    "enum": TraceEnum_ELBO,
    "iwae": ImportanceWeightedELBO,
    "renyi": RenyiBound,
    "cubo": ChiUpperBound,
}


#: the names ``make_elbo`` and ``fit(elbo=...)`` accept
ELBO_NAMES = tuple(OBJECTIVES)
#: objectives built from ``K`` importance weights per step (``num_particles`` is their ``K``)
PARTICLE_BOUNDS = ("iwae", "renyi", "cubo")


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
    alpha: float | None = None,
    **options: Any,
) -> ELBO:
    """Build a Pyro ELBO from its name (see :data:`OBJECTIVES`).

    ``num_particles > 1`` draws several samples per step, vectorized over a new leftmost batch
    dimension when ``vectorize_particles`` (the model must then have static structure).
    ``"iwae"``, ``"renyi"`` and ``"cubo"`` use ``num_particles`` as the bound's ``K`` (always
    vectorized; the last two need ``K >= 2``, since with one particle every such bound is the
    ELBO). ``alpha`` is the Rényi bound's order (``"renyi"`` only; default 0.5).
    """
    check_choice("elbo", name, tuple(OBJECTIVES))
    num_particles = check_positive_int("num_particles", num_particles)
    if alpha is not None and name != "renyi":
        raise ValueError(f"alpha is the order of elbo='renyi'; elbo={name!r} takes none.")
    kwargs: dict[str, Any] = dict(
        num_particles=num_particles, vectorize_particles=vectorize_particles and num_particles > 1
    )
    if name in PARTICLE_BOUNDS:
        if name != "iwae" and num_particles < 2:
            raise ValueError(
                f"elbo={name!r} needs num_particles >= 2 (the bound's K); with one particle it "
                "is the ELBO."
            )
        kwargs = {"num_particles": num_particles}
        if name == "renyi":
            kwargs["alpha"] = 0.5 if alpha is None else alpha
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
