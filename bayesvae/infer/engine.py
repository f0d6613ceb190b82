"""The SVI engine, in NumPyro's shape: :class:`SVIEngine` with ``init`` / ``step`` / ``evaluate``
/ ``state_dict``, the piece of :func:`bayesvae.fit` that optimises. The loop around it
(:mod:`bayesvae.infer.svi`) feeds it steps and writes history rows; KL warm-up, checkpoints and
early stopping are callbacks (:mod:`bayesvae.infer.callbacks`).

A user can drive it directly::

    engine = SVIEngine(model.model, model.guide, Trace_ELBO(), optimizer="adam", lr=1e-3)
    engine.init(x)
    for _ in range(100):
        loss = engine.step(x)          # a tensor; no host sync
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyro
import torch
from pyro import poutine
from pyro.infer import TraceEnum_ELBO

from bayesvae.backends.schedules import lr_factor
from bayesvae.infer.objectives import backward_loss, quiet_jit_deprecation
from bayesvae.models.program import param_sites

__all__ = ["SVIEngine", "TrainingDivergedError", "check_losses", "evaluate", "evaluate_inputs"]

logger = logging.getLogger(__name__)

#: without clipping, the gradient norm is measured on every this-many-th step (1st, 11th, ...)
GRAD_NORM_EVERY = 10


class TrainingDivergedError(RuntimeError):
    """The loss or the parameters became NaN or infinite; the last good checkpoint is kept."""


class SVIEngine:
    """One SVI optimisation of ``model_fn``/``guide_fn`` under ``objective``.

    - ``init(*args, **kwargs)``: one checked pass (Pyro validation on) that creates and collects
      the parameters, then builds the optimizer (a name, a ``torch.optim`` class or a Pyro
      optimizer) and the learning-rate schedule;
    - ``step(*args, **kwargs)``: one gradient step; returns the loss as a detached tensor (no
      host sync), samples the gradient norm (every step with ``clip_norm``);
    - ``evaluate(inputs, num_data)``: the ELBO and its terms on held-out inputs (see
      :func:`bayesvae.infer.svi.evaluate_inputs`), without gradients;
    - ``end_row()``: one step of the learning-rate schedule;
    - ``state_dict()`` / ``load_state_dict()``: optimizer and schedule (the model's state is the
      caller's: :func:`bayesvae.runs.model_state`).

    ``ddp`` (from :func:`bayesvae.infer.distributed.setup_ddp`) broadcasts the initial
    parameters and averages gradients across ranks. With ``jit_fallback``, the first step
    compiles ``objective`` and falls back to ``jit_fallback()`` (logged) when the model cannot
    be traced.
    """

    def __init__(
        self,
        model_fn: Callable[..., Any],
        guide_fn: Callable[..., Any],
        objective: Any,
        *,
        optimizer: Any = "adam",
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        betas: tuple[float, float] = (0.9, 0.999),
        lr_schedule: str = "constant",
        lr_decay: float = 0.99,
        horizon: int = 1,
        clip_norm: float | None = None,
        ddp: Any = None,
        jit_fallback: Callable[[], Any] | None = None,
    ) -> None:
        self.model_fn, self.guide_fn, self.objective = model_fn, guide_fn, objective
        self.optimizer_spec, self.lr = optimizer, lr
        self.weight_decay, self.betas = weight_decay, betas
        self.lr_schedule, self.lr_decay = lr_schedule, lr_decay
        self.horizon = [horizon]  # the cosine schedule's rows (set again on resume)
        self.clip_norm, self.ddp, self.jit_fallback = clip_norm, ddp, jit_fallback
        self.params: list[torch.Tensor] = []
        self.optimizer: Any = None
        self.scheduler: Any = None
        self.grad_norms: list[torch.Tensor] = []
        self._row_steps = 0  # steps since the last mean_grad_norm() (one history row)

    def init(self, *args: Any, **kwargs: Any) -> list[torch.Tensor]:
        """Create the parameters (model and guide run once, validated) and the optimizer."""
        with pyro.validation_enabled(True):  # shapes, supports, model/guide match
            self.params = _capture_params(self.model_fn, self.guide_fn, args, kwargs)
        if self.ddp is not None:
            self.ddp.broadcast(self.params)
        self.optimizer = _make_any_optimizer(
            self.optimizer_spec, self.params, self.lr, self.weight_decay, self.betas
        )
        if isinstance(self.optimizer_spec, str):
            self.scheduler = _make_scheduler(
                self.lr_schedule, self.optimizer, self.horizon, self.lr_decay
            )
        return self.params

    def step(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        """One gradient step on ``model_fn(*args, **kwargs)``; the loss (a detached tensor)."""
        if self.jit_fallback is not None:  # the first step compiles: fall back if it cannot
            self.objective = _compiled_or_fallback(
                self.objective, self.model_fn, self.guide_fn, args, kwargs, self.jit_fallback
            )
            self.jit_fallback = None
        loss = backward_loss(self.objective, self.model_fn, self.guide_fn, *args, **kwargs)
        if self.ddp is not None:  # every rank sees the same averaged loss and gradients
            loss = self.ddp.average_gradients(self.params, loss).to(loss.dtype)
        self._row_steps += 1
        if self.clip_norm is not None:
            self.grad_norms.append(torch.nn.utils.clip_grad_norm_(self.params, self.clip_norm))
        elif self._row_steps % GRAD_NORM_EVERY == 1:  # a sample of steps keeps the hot path lean
            grads = [p.grad for p in self.params if p.grad is not None]
            if grads:
                self.grad_norms.append(torch.nn.utils.get_total_norm(grads))  # no sync
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return loss

    def mean_grad_norm(self) -> float:
        """The mean of the gradient norms sampled since the last call (NaN for none)."""
        norms, self.grad_norms, self._row_steps = self.grad_norms, [], 0
        return float(torch.stack(norms).mean()) if norms else math.nan

    def evaluate(self, model: Any, inputs: Any, num_data: int) -> dict[str, float]:
        """ELBO terms per data point on ``inputs`` (``(args, kwargs, weight)`` triples)."""
        with pyro.validation_enabled(False):
            return evaluate_inputs(model, inputs, num_data)

    def end_row(self) -> None:
        """One step of the learning-rate schedule (once a history row)."""
        if self.scheduler is not None:
            self.scheduler.step()

    @property
    def current_lr(self) -> float:
        return self.optimizer.param_groups[0]["lr"]

    def parameters_finite(self) -> bool:
        return all(bool(torch.isfinite(p).all()) for p in self.params)

    def state_dict(self) -> dict[str, Any]:
        return {
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
        }

    def load_state_dict(self, state: dict[str, Any], *, horizon: int | None = None) -> None:
        """Restore :meth:`state_dict`; ``horizon`` sets a cosine schedule's end anew (a resumed
        fit that asks for more rows decays towards its new end)."""
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and state["scheduler"] is not None:
            self.scheduler.load_state_dict(state["scheduler"])
            if self.lr_schedule == "cosine" and horizon is not None:
                self.horizon[0] = horizon
                row = self.scheduler.last_epoch
                factor = lr_factor("cosine", row, horizon=horizon, decay=self.lr_decay)
                for group, base in zip(
                    self.optimizer.param_groups, self.scheduler.base_lrs, strict=True
                ):
                    group["lr"] = base * factor


def _make_scheduler(
    name: str, optimizer: Any, horizon: list[int], lr_decay: float
) -> torch.optim.lr_scheduler.LRScheduler | None:
    """The learning-rate schedule, stepped once a history row. ``"cosine"`` is written in closed
    form over ``horizon[0]`` rows, read at every step, so a resumed fit that asks for more rows
    decays towards its new end (the horizon is set again on resume)."""
    if name == "cosine":
        return torch.optim.lr_scheduler.LambdaLR(
            optimizer,
            lambda row: lr_factor("cosine", row, horizon=horizon[0], decay=lr_decay),
        )
    if name == "exponential":  # lr_factor's decay ** row, kept as torch's own scheduler
        return torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=lr_decay)
    return None


def _compiled_or_fallback(
    objective: Any,
    model_fn: Any,
    guide_fn: Any,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    make_fallback: Callable[[], Any],
) -> Any:
    """Compile the JIT objective on a trial pass; if the model does not trace, log why and
    return ``make_fallback()`` instead (the trial's gradients are discarded either way)."""
    try:
        with quiet_jit_deprecation(True):
            objective.differentiable_loss(model_fn, guide_fn, *args, **kwargs)
    except Exception as err:  # noqa: BLE001  (any tracing failure: fall back, say why)
        logger.warning(
            "elbo='jit': the model could not be traced (%s: %s); training with Trace_ELBO instead",
            type(err).__name__,
            str(err).splitlines()[0] if str(err) else "",
        )
        return make_fallback()
    return objective


def _make_optimizer(
    name: str,
    params: list[torch.Tensor],
    lr: float,
    weight_decay: float,
    betas: tuple[float, float] = (0.9, 0.999),
) -> torch.optim.Optimizer:
    if name == "adam":
        options = dict(lr=lr, weight_decay=weight_decay, betas=betas)
        try:  # the fused kernel (CPU and CUDA) is several times faster than per-tensor Adam
            return torch.optim.Adam(params, fused=True, **options)
        except (RuntimeError, ValueError):  # e.g. a dtype or device the kernel does not cover
            return torch.optim.Adam(params, **options)
    from pyro.optim.clipped_adam import ClippedAdam

    return ClippedAdam(params, lr=lr, weight_decay=weight_decay, betas=betas)


def _capture_params(
    model_fn: Any, guide_fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> list[torch.Tensor]:
    """Run model and guide once (no gradients) and collect the unconstrained Pyro params."""
    sites = param_sites(model_fn, guide_fn, args, kwargs)
    params = list({id(p): p for p in (s["value"].unconstrained() for s in sites.values())}.values())
    if not params:
        raise ValueError(
            "the model and guide declare no parameters to fit (no pyro.param or "
            "pyro.module); nothing to optimise."
        )
    return params


def _make_any_optimizer(
    optimizer: Any,
    params: list[torch.Tensor],
    lr: float,
    weight_decay: float,
    betas: tuple[float, float],
) -> Any:
    """A torch optimizer from a name, a ``torch.optim.Optimizer`` subclass (built with ``lr``),
    or a Pyro optimizer (``pyro.optim.Adam({...})``, stepped by :class:`_PyroOptimStep`)."""
    from pyro.optim import PyroOptim

    if isinstance(optimizer, str):
        return _make_optimizer(optimizer, params, lr, weight_decay, betas)
    if isinstance(optimizer, PyroOptim):
        return _PyroOptimStep(optimizer, params)
    return optimizer(params, lr=lr)


class _PyroOptimStep:
    """A Pyro optimizer (one torch optimizer per parameter, made lazily) behind the two calls the
    loop makes: ``step()`` and ``zero_grad()``; its state saves with ``state_dict()``."""

    def __init__(self, optim: Any, params: list[torch.Tensor]) -> None:
        self.optim, self.params = optim, params
        self.param_groups = [{"lr": math.nan, "params": params}]

    def step(self) -> None:
        self.optim([p for p in self.params if p.grad is not None])

    def zero_grad(self, set_to_none: bool = True) -> None:
        for param in self.params:
            param.grad = None

    def state_dict(self) -> dict[str, Any]:
        return self.optim.get_state()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.optim.set_state(state)


def check_losses(
    losses: torch.Tensor,
    epoch: int,
    step_offset: int,
    folder: Path | None,
    *,
    first_step: int | None = None,
    unit: str = "epoch",
) -> None:
    """Raise :class:`TrainingDivergedError` naming the epoch and the first step whose loss in
    ``losses`` (one per step) is NaN or infinite."""
    finite = torch.isfinite(losses)
    if bool(finite.all()):
        return
    index = int((~finite).nonzero()[0, 0])
    step = first_step if first_step is not None else step_offset + index
    raise TrainingDivergedError(
        f"the loss became {float(losses[index])} at {unit} {epoch}, step {step}; training stopped"
        + (f" and the checkpoints in {folder} are those of the last good {unit}" if folder else "")
        + ". Try a lower lr, clip_norm=, or check the data."
    )


def _plate_scale(site: dict[str, Any]) -> float:
    scale = 1.0
    for frame in site["cond_indep_stack"]:
        if frame.full_size is not None and frame.size:
            scale *= frame.full_size / frame.size
    return scale


def _site_log_prob(site: dict[str, Any]) -> torch.Tensor:
    """Log density of a site summed over its plates, scaled for subsampling only (not β)."""
    log_prob = site["fn"].log_prob(site["value"])
    if site.get("mask") is not None:
        log_prob = log_prob * site["mask"]
    return log_prob.sum() * _plate_scale(site)


def _enumerated_sites(trace: Any) -> list[str]:
    """Names of the sample sites marked for enumeration (``infer={"enumerate": ...}``)."""
    return [
        name
        for name, site in trace.nodes.items()
        if site["type"] == "sample" and site["infer"].get("enumerate")
    ]


def evaluate(model: Any, batches: Any, num_data: int) -> dict[str, float]:
    """Unweighted ELBO of a family's ``model``/``guide`` per data point, and its two terms, over
    minibatches ``batches`` (tuples of tensors) of a data set of ``num_data`` rows.

    One draw of the guide per minibatch; ``recon`` sums the observed sites' log-likelihoods,
    ``kl`` the latent sites' ``log q - log p``; ``elbo = recon - kl`` (nats per data point).
    With several latent sites (e.g. the layers of a hierarchical VAE) each one's term is also
    returned as ``kl_<site>``. Discrete sites marked for enumeration are summed out of ``recon``
    (with TraceEnum_ELBO).
    """
    inputs = (
        (tuple(batch), {"num_data": num_data}, batch[0].shape[0] / num_data) for batch in batches
    )
    return evaluate_inputs(model, inputs, num_data)


@torch.no_grad()
def evaluate_inputs(model: Any, inputs: Any, num_data: int) -> dict[str, float]:
    """:func:`evaluate` over ``inputs``: ``(args, kwargs, weight)`` triples, each one call of
    model and guide whose (subsampling-scaled) terms count with ``weight`` (a minibatch's share
    of the data; 1 for a program given all of it); the sums are divided by ``num_data``."""
    recon = kl = 0.0
    kl_sites: dict[str, float] = {}
    was_training = model.training
    model.eval()
    try:
        for args, kwargs, weight in inputs:
            guide_trace = poutine.trace(model.guide).get_trace(*args, **kwargs)
            model_trace = poutine.trace(poutine.replay(model.model, trace=guide_trace)).get_trace(
                *args, **kwargs
            )
            enumerated = _enumerated_sites(model_trace)
            batch_recon = batch_kl = 0.0
            for name, site in model_trace.nodes.items():
                if (
                    site["type"] != "sample"
                    or site["infer"].get("_do_not_trace")
                    or type(site["fn"]).__name__ == "_Subsample"
                ):
                    continue
                if site["is_observed"]:
                    batch_recon += float(_site_log_prob(site))
                elif name in guide_trace.nodes:
                    site_kl = float(_site_log_prob(guide_trace.nodes[name]) - _site_log_prob(site))
                    kl_sites[name] = kl_sites.get(name, 0.0) + weight * site_kl
                    batch_kl += site_kl
            if enumerated:
                # Sum the enumerated discrete sites out (same guide draw): recon = ELBO + KL.
                objective = TraceEnum_ELBO(
                    max_plate_nesting=model.max_plate_nesting or float("inf")
                )
                # the same guide draw, unless the guide itself enumerates (a label summed out
                # in the guide): a replayed guide would pin those sites to the draw
                guide = (
                    model.guide
                    if _enumerated_sites(guide_trace)
                    else poutine.replay(model.guide, trace=guide_trace)
                )
                elbo = -objective.loss(model.model, guide, *args, **kwargs)
                batch_recon = elbo + batch_kl
            recon += weight * batch_recon
            kl += weight * batch_kl
    finally:
        model.train(was_training)
    terms = {"elbo": (recon - kl) / num_data, "recon": recon / num_data, "kl": kl / num_data}
    if len(kl_sites) > 1:
        terms.update({f"kl_{name}": value / num_data for name, value in kl_sites.items()})
    return terms


# ----------------------------------------------------------------------------------- fit
