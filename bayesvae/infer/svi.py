"""One SVI fit loop for every model: :func:`fit` and its :class:`FitResult`.

The loop relies only on the contract written in :mod:`bayesvae.models.contract`, never on a
concrete family. A user's Pyro program (any ``model(*args, **kwargs)`` with an AutoGuide or its own
guide) is the general case: each step gets the program's own arguments (full data; a subsampled
``pyro.plate`` inside the program draws minibatches), and history rows come every ``eval_every``
steps. A built-in family is the case whose ``model``/``guide`` take minibatch tensors and
``num_data=``: each step gets one minibatch, and rows come once an epoch.
"""

from __future__ import annotations

import logging
import math
import random
import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyro
import torch
from pyro import poutine
from pyro.infer import TraceEnum_ELBO
from torch.utils.data import DataLoader

from bayesvae.data.datasets import ImageData
from bayesvae.data.loaders import DynamicBinarize, TensorBatches
from bayesvae.data.validation import check_choice, check_positive_int
from bayesvae.infer import checkpoint as ckpt
from bayesvae.infer.callbacks import Callback, EarlyStopping, FitState
from bayesvae.infer.distributed import setup_ddp
from bayesvae.infer.objectives import (
    ELBO_NAMES,
    backward_loss,
    make_elbo,
    quiet_jit_deprecation,
    scale_latents,
)
from bayesvae.models.contract import ModelContract
from bayesvae.models.program import PyroProgram, as_model, check_program, program_inputs
from bayesvae.runs import RunWriter, load_model_state, model_state, save_model, save_program

__all__ = ["fit", "FitResult", "evaluate", "resolve_device", "TrainingDivergedError"]

logger = logging.getLogger(__name__)

OPTIMIZERS = ("adam", "clippedadam")
LR_SCHEDULES = ("constant", "cosine", "exponential")
STRATEGIES = ("ddp",)
BACKENDS = ("pyro", "numpyro")
LAST_CHECKPOINT, BEST_CHECKPOINT = "last.pt", "best.pt"
#: without clipping, the gradient norm is measured on every this-many-th step (1st, 11th, ...)
GRAD_NORM_EVERY = 10


class TrainingDivergedError(RuntimeError):
    """The loss became NaN or infinite during training."""


@dataclass
class FitResult:
    """What :func:`fit` returns.

    Attributes:
        model: the fitted model, on ``device``.
        history: one row per epoch: ``epoch``, ``train_elbo`` (the objective being maximised,
            per data point: it includes β and the KL warm-up weight), ``val_elbo`` (with ``val``),
            ``recon`` and ``kl`` (per data point, unweighted, on ``val`` or else on up to
            ``eval_size`` training points; ``recon - kl`` is the ELBO), ``kl_<site>`` per latent
            site when there are several (hierarchical VAE layers), ``kl_weight``, ``lr``,
            ``grad_norm`` (mean global gradient norm before clipping: over every step when
            clipping, else over every 10th step), ``seconds``, ``samples_per_s``.
        device: where the model was trained.
        best_epoch: epoch with the best monitored ELBO.
        stop_reason: why training ended early, if it did.
        settings: the options :func:`fit` ran with.
    """

    model: Any
    history: Any
    device: torch.device
    best_epoch: int | None = None
    stop_reason: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    #: a program's ``(args, kwargs)`` as fitted (tensors on ``device``); ``None`` for a family
    data: tuple[tuple[Any, ...], dict[str, Any]] | None = None

    def to_inference_data(
        self,
        *data: Any,
        num_samples: int = 500,
        seed: int = 0,
        vectorize: bool | None = None,
        **kwargs: Any,
    ) -> Any:
        """ArviZ ``InferenceData`` from the fitted guide (posterior, posterior_predictive,
        observed_data, pointwise log_likelihood; for a program also constant_data; one chain of
        independent draws) on ``data`` — by default, a program's own fitted arguments. See
        :func:`bayesvae.infer.posterior.svi_to_inference_data`."""
        from bayesvae.infer.posterior import svi_to_inference_data

        if not data and not kwargs and self.data is not None:
            data, kwargs = self.data
        return svi_to_inference_data(
            self.model, *data, num_samples=num_samples, seed=seed, vectorize=vectorize, **kwargs
        )

    def save(self, path: str | Path | RunWriter) -> Path:
        """Write a run folder (config.yaml, model.pt, metrics.csv; for a program also data.pt)
        at ``path``, replacing a run there whole (see :class:`bayesvae.runs.RunWriter`; or into
        an open ``RunWriter``); load with ``bayesvae.load`` (a program's with
        ``bayesvae.load(path, model=fn)``)."""
        if isinstance(self.model, PyroProgram):
            assert self.data is not None
            return save_program(
                self.model, self.data, path, history=self.history, fit_config=self.settings
            )
        return save_model(self.model, path, history=self.history, fit_config=self.settings)


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; ``"cpu"``, ``"cuda"``, ``"cuda:N"`` as given."""
    if isinstance(device, torch.device):
        resolved = device
    elif isinstance(device, str):
        if device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        try:
            resolved = torch.device(device)
        except RuntimeError:
            raise ValueError(
                f"unknown device {device!r}; expected 'auto', 'cpu', 'cuda' or 'cuda:N'."
            ) from None
        if resolved.type not in ("cpu", "cuda"):
            raise ValueError(
                f"unknown device {device!r}; expected 'auto', 'cpu', 'cuda' or 'cuda:N'."
            )
    else:
        raise TypeError(f"device must be a string or torch.device, got {type(device).__name__}.")
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device {device!r} was asked for, but CUDA is not available here; "
            "use device='auto' or 'cpu'."
        )
    return resolved


# ------------------------------------------------------------------------------------ data
def _prepare_data(
    model: ModelContract, data: Any, name: str
) -> tuple[tuple[torch.Tensor, ...], Any]:
    """``data`` -> (validated tensors, batch transform). Accepts an array/tensor, a tuple of them,
    or :class:`~bayesvae.data.ImageData`."""
    transform = None
    if isinstance(data, ImageData):
        tensors: tuple[Any, ...] = (data.x,)
        transform = DynamicBinarize() if data.binarize == "dynamic" else None
    elif isinstance(data, (tuple, list)) and data and not np.isscalar(data[0]):
        tensors = tuple(data)
    else:
        tensors = (data,)
    try:
        converted = model.check_data(*tensors)
        tensors = tuple(converted) if converted is not None else tensors
        tensors = tuple(torch.as_tensor(t) for t in tensors)
    except (ValueError, TypeError) as err:
        raise type(err)(f"{name}: {err}") from None
    if len(tensors[0]) == 0:
        raise ValueError(f"{name} is empty; expected at least one row.")
    return tensors, transform


def _fixed(
    tensors: tuple[torch.Tensor, ...], transform: Any, seed: int
) -> tuple[torch.Tensor, ...]:
    """Apply a random batch transform once, with a seeded generator, so evaluation data stay
    the same every epoch (e.g. a dynamically binarized validation set binarized once)."""
    if transform is None:
        return tensors
    generator = torch.Generator().manual_seed(seed)
    return (transform(tensors[0], generator=generator),) + tensors[1:]


def _storage_device(tensors: tuple[torch.Tensor, ...], device: torch.device) -> torch.device:
    """Where the training tensors are kept: on a CUDA ``device`` when they take less than half
    of its free memory (minibatches are then gathered and binarized there, as a hand-written
    GPU loop does); else on the CPU, from which each minibatch is copied through pinned
    memory."""
    if device.type != "cuda":
        return torch.device("cpu")
    needed = sum(t.numel() * t.element_size() for t in tensors)
    free, _ = torch.cuda.mem_get_info(device)
    if needed < free // 2:
        return device
    logger.info(
        "the training data (%.0f MiB) stay on the CPU: more than half of %s's free memory",
        needed / 2**20,
        device,
    )
    return torch.device("cpu")


def _loader_size(loader: DataLoader) -> int:
    try:
        return len(loader.dataset)  # type: ignore[arg-type]
    except TypeError:
        raise ValueError("a DataLoader passed to fit needs a dataset with a length.") from None


# ------------------------------------------------------------------------------ evaluation
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
                replayed_guide = poutine.replay(model.guide, trace=guide_trace)
                elbo = -objective.loss(model.model, replayed_guide, *args, **kwargs)
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
def _seed_everything(seed: int) -> None:
    pyro.set_rng_seed(seed)  # torch, numpy and random


def _rng_state() -> dict[str, Any]:
    kind, keys, position, has_gauss, cached = np.random.get_state()
    state = {  # plain values and tensors only: checkpoints load with weights_only=True
        "torch": torch.get_rng_state(),
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), position, has_gauss, cached],
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    kind, keys, position, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), position, has_gauss, cached))
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


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


def _make_scheduler(
    name: str, optimizer: Any, horizon: list[int], lr_decay: float
) -> torch.optim.lr_scheduler.LRScheduler | None:
    """The learning-rate schedule, stepped once a history row. ``"cosine"`` is written in closed
    form over ``horizon[0]`` rows, read at every step, so a resumed fit that asks for more rows
    decays towards its new end (the horizon is set again on resume)."""
    if name == "cosine":
        return torch.optim.lr_scheduler.LambdaLR(
            optimizer,
            lambda row: 0.5 * (1.0 + math.cos(math.pi * min(row, horizon[0]) / horizon[0])),
        )
    if name == "exponential":
        return torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=lr_decay)
    return None


def _capture_params(
    model_fn: Any, guide_fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> list[torch.Tensor]:
    """Run model and guide once (no gradients) and collect the unconstrained Pyro params."""
    with torch.no_grad(), poutine.trace(param_only=True) as capture:
        guide_trace = poutine.trace(guide_fn).get_trace(*args, **kwargs)
        poutine.replay(model_fn, trace=guide_trace)(*args, **kwargs)
    params = list(
        {
            id(p): p for p in (s["value"].unconstrained() for s in capture.trace.nodes.values())
        }.values()
    )
    if not params:
        raise ValueError(
            "the model and guide declare no parameters to fit (no pyro.param or "
            "pyro.module); nothing to optimise."
        )
    return params


def _check_positive_float(name: str, value: Any) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}.")
    return float(value)


def _check_lr_decay(lr_decay: Any) -> float:
    if (
        isinstance(lr_decay, bool)
        or not isinstance(lr_decay, (int, float))
        or not 0 < lr_decay <= 1
    ):
        raise ValueError(f"lr_decay must be a number in (0, 1], got {lr_decay!r}.")
    return float(lr_decay)


def _check_seed(seed: Any) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise TypeError(f"seed must be a non-negative integer, got {seed!r}.")
    return int(seed)


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


class _ProgramSteps:
    """``length`` steps of a program, each with its own (full) arguments."""

    def __init__(self, args: tuple[Any, ...], kwargs: dict[str, Any], length: int) -> None:
        self.args, self.kwargs, self.length = args, kwargs, length

    def __len__(self) -> int:
        return self.length

    def __iter__(self) -> Any:
        for _ in range(self.length):
            yield self.args, self.kwargs


class _FamilySteps:
    """A family's minibatches as step arguments: ``(batch tensors, {"num_data": N})``."""

    def __init__(self, loader: Any, num_data: int, to_device: Any) -> None:
        self.loader, self.num_data, self.to_device = loader, num_data, to_device

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Any:
        for batch in self.loader:
            yield self.to_device(batch), {"num_data": self.num_data}


def _to_device(value: Any, device: torch.device) -> Any:
    return value.to(device) if torch.is_tensor(value) else value


def fit(
    model: Any,
    *data: Any,
    guide: str | Any = None,
    val: Any = None,
    epochs: int | None = None,
    num_steps: int | None = None,
    eval_every: int | None = None,
    batch_size: int | None = None,
    lr: float | None = None,
    elbo: str | Any = None,
    num_particles: int = 1,
    vectorize_particles: bool = True,
    optimizer: str | Any = "adam",
    weight_decay: float = 0.0,
    betas: tuple[float, float] = (0.9, 0.999),
    lr_schedule: str | None = None,
    lr_decay: float = 0.99,
    clip_norm: float | None = None,
    kl_warmup: int = 0,
    early_stopping: int | None = None,
    callbacks: Sequence[Callback] = (),
    device: str | torch.device = "auto",
    seed: int = 0,
    progress: bool = True,
    checkpoint_dir: str | Path | None = None,
    checkpoint_every: int = 1,
    resume: bool = False,
    eval_size: int = 5000,
    validate_args: bool = False,
    strategy: str | None = None,
    backend: str = "pyro",
    init_loc_fn: Any = None,
    model_kwargs: dict[str, Any] | None = None,
    **kwargs: Any,
) -> FitResult:
    """Fit a model by stochastic variational inference: a user's Pyro program or a built-in
    family.

    **A Pyro program** (any callable): ``fit(model, *args, guide="normal", **kwargs)`` passes
    ``args``/``kwargs`` to ``model`` and ``guide`` every step, exactly as
    ``pyro.infer.SVI.step(*args, **kwargs)`` would (arrays become tensors, floating ones in
    torch's default dtype; NaN/inf refused). Steps are full-batch; a program that subsamples
    (``pyro.plate("data", N, subsample_size=B)``) gets its minibatches and their ``N / B`` scale
    from Pyro. Any keyword that is not an option of ``fit`` goes to the program; an argument
    named like an option goes in ``model_kwargs={...}``. An ``nn.Module`` with ``model`` and
    ``guide`` methods that is not a bayesvae family is fitted the same way.

    **A family** (:class:`bayesvae.VAE`, ...): ``fit(family, train, val=...)`` with ``train`` an
    array/tensor ``(N, ...)``, a tuple of them (passed to the model positionally),
    :class:`~bayesvae.data.ImageData` or a ``DataLoader``; each step is one minibatch.

    Args:
        guide: for a program: ``"normal"`` (AutoNormal, the default), ``"mvn"``
            (AutoMultivariateNormal), ``"lowrank"``, ``"iaf"``, ``"delta"`` (MAP),
            ``"laplace"``, an AutoGuide instance or the user's guide callable (see
            :class:`~bayesvae.models.program.PyroProgram`); ``init_loc_fn`` is passed to an
            AutoGuide built by name. A family brings its own guide.
        val: a family's validation data (its ELBO after every epoch).
        epochs: a family's passes over ``train`` (default 10; the total, counting resumed ones).
        num_steps: a program's SVI steps (default 2000; the total, counting resumed ones).
        eval_every: a program's steps per history row (default 100): the row's ``train_elbo``
            averages those steps, and its ``recon``/``kl`` come from one evaluation.
        batch_size: a family's minibatch size ``B`` (default 128); the model's plate scales each
            minibatch by ``N / B``. The last incomplete minibatch of an epoch is dropped.
        lr: learning rate (default 1e-3 for a family, 0.03 for a program, as in Pyro's
            regression tutorial).
        elbo: a name — ``"trace"`` (sync-free Trace_ELBO), ``"meanfield"`` (analytic KL where
            available), ``"jit"``, ``"enum"`` (TraceEnum_ELBO: sites marked for enumeration are
            summed out) or ``"iwae"`` (the importance-weighted bound, ``K = num_particles``) —
            or any Pyro ELBO instance (``TraceGraph_ELBO()``, ``RenyiELBO(alpha=0.5)``, ...).
            Default: the model's ``default_elbo``.
        num_particles: samples per step, vectorized when ``vectorize_particles`` (names only).
        optimizer: ``"adam"``, ``"clippedadam"``, a ``torch.optim.Optimizer`` subclass (built
            with ``lr``) or a Pyro optimizer instance (``pyro.optim.Adam({"lr": 0.01})``, which
            carries its own settings). ``weight_decay`` and ``betas`` apply to the names.
        lr_schedule: ``"constant"`` (a family's default), ``"cosine"`` (to 0 over the rows; a
            program's default with an optimizer by name, so its last iterate settles instead of
            jittering by ~lr around the optimum, which matters for tight posteriors) or
            ``"exponential"``
            (multiply by ``lr_decay`` in (0, 1] each row).
        clip_norm: clip the global gradient norm to this value each step.
        kl_warmup: rows (epochs; for a program, evaluations) over which the weight of latent sites
            rises linearly from ~0 to 1 (a latent-only ``poutine.scale``).
        early_stopping: patience in rows on ``val_elbo`` (``train_elbo`` without ``val``).
        callbacks: :class:`~bayesvae.infer.callbacks.Callback` objects.
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``; a
            program's tensor arguments move there.
        seed: seeds torch, numpy, random and the minibatch order; same seed, same history on CPU.
        progress: show a progress bar (only when stderr is a terminal).
        checkpoint_dir: write ``last.pt`` every ``checkpoint_every`` rows (and after the last)
            and ``best.pt`` whenever the monitored ELBO improves, atomically; a NaN loss leaves
            them as they were, and a checkpoint that cannot be written (a full disk) stops the
            fit with :class:`~bayesvae.infer.checkpoint.CheckpointWriteError`, the earlier file
            intact.
        checkpoint_every: rows (epochs; a program's evaluation blocks) between ``last.pt``
            writes.
        resume: continue from ``checkpoint_dir/last.pt`` (same model) up to ``epochs`` /
            ``num_steps``.
        eval_size: a family without ``val`` evaluates ``recon``/``kl`` on this many points.
        validate_args: keep Pyro's distribution checks on inside the training loop (off by
            default for speed; model and guide are checked once, with validation, before).
        strategy: ``None`` or ``"ddp"`` (a family's data-parallel SVI under ``torchrun``; see
            :mod:`bayesvae.infer.distributed`).
        backend: ``"pyro"`` (this loop) or ``"numpyro"``: a family's NumPyro twin trains with
            jitted SVI and its weights are copied back; options beyond epochs, batch size, Adam's
            lr/betas, ``elbo`` ("trace"/"meanfield"), seed, val and progress are refused.

    Returns:
        :class:`FitResult` with the fitted model (for a program, its
        :class:`~bayesvae.models.program.PyroProgram`) and the history.

    Raises:
        ValueError, TypeError: bad data or options, before any training.
        TrainingDivergedError: the loss became NaN/inf (names the row and step).
    """
    import pandas as pd

    # -- which kind of model, and its arguments
    contract = as_model(model, guide, **({"init_loc_fn": init_loc_fn} if init_loc_fn else {}))
    is_program = not contract.takes_num_data
    if model_kwargs is not None and not isinstance(model_kwargs, dict):
        raise TypeError(f"model_kwargs must be a dict, got {type(model_kwargs).__name__}.")
    program_kwargs = {**kwargs, **(model_kwargs or {})}
    if is_program:
        given = {
            "epochs": epochs,
            "batch_size": batch_size,
            "val": val,
            "strategy": strategy,
        }
        wrong = [name for name, value in given.items() if value is not None]
        if wrong:
            raise ValueError(
                f"{wrong} apply to model families; a Pyro program takes its data as arguments "
                "and runs num_steps full-data steps (subsample inside it with "
                "pyro.plate(name, N, subsample_size=B))."
            )
        if backend != "pyro":
            check_choice("backend", backend, BACKENDS)
            raise ValueError(
                "backend='numpyro' trains a family's NumPyro twin; a Pyro program trains on "
                "backend='pyro' (for NumPyro NUTS on a NumPyro program use bayesvae.mcmc)."
            )
        num_steps = check_positive_int("num_steps", 2000 if num_steps is None else num_steps)
        eval_every = check_positive_int("eval_every", 100 if eval_every is None else eval_every)
        eval_every = min(eval_every, num_steps)
        epochs = math.ceil(num_steps / eval_every)
        lr = 0.03 if lr is None else lr
    else:
        if program_kwargs:
            raise TypeError(
                f"fit() got unexpected keyword arguments {sorted(program_kwargs)}; keywords pass "
                f"to the model only for Pyro programs, not for {type(contract).__name__}."
            )
        if len(data) != 1:
            raise TypeError(
                f"fit({type(contract).__name__}, train, val=...) takes one training data "
                f"argument (a tuple for several arrays), got {len(data)}."
            )
        for name, value in (("num_steps", num_steps), ("eval_every", eval_every)):
            if value is not None:
                raise ValueError(f"{name} applies to Pyro programs; a family trains for epochs.")
        epochs = check_positive_int("epochs", 10 if epochs is None else epochs)
        batch_size = check_positive_int("batch_size", 128 if batch_size is None else batch_size)
        lr = 1e-3 if lr is None else lr
    lr = _check_positive_float("lr", lr)
    seed = _check_seed(seed)
    from pyro.optim import PyroOptim

    if isinstance(optimizer, str):
        check_choice("optimizer", optimizer, OPTIMIZERS)
    elif not isinstance(optimizer, PyroOptim) and not (
        isinstance(optimizer, type) and issubclass(optimizer, torch.optim.Optimizer)
    ):
        raise TypeError(
            f"optimizer must be one of {list(OPTIMIZERS)}, a torch.optim.Optimizer class or a "
            f"pyro.optim optimizer, got {optimizer!r}."
        )
    if len(tuple(betas)) != 2 or not all(0 <= float(b) < 1 for b in betas):
        raise ValueError(f"betas must be two numbers in [0, 1), got {betas!r}.")
    betas = (float(betas[0]), float(betas[1]))
    if lr_schedule is None:
        lr_schedule = "cosine" if is_program and isinstance(optimizer, str) else "constant"
    check_choice("lr_schedule", lr_schedule, LR_SCHEDULES)
    lr_decay = _check_lr_decay(lr_decay)
    if isinstance(optimizer, PyroOptim) and lr_schedule != "constant":
        raise ValueError("lr_schedule applies to optimizers by name; a Pyro optimizer has its own.")
    if clip_norm is not None:
        clip_norm = _check_positive_float("clip_norm", clip_norm)
    if isinstance(kl_warmup, bool) or not isinstance(kl_warmup, int) or kl_warmup < 0:
        raise ValueError(f"kl_warmup must be a non-negative integer (epochs), got {kl_warmup!r}.")
    if early_stopping is not None:
        early_stopping = check_positive_int("early_stopping", early_stopping)
    eval_size = check_positive_int("eval_size", eval_size)
    from pyro.infer import ELBO

    elbo_object = elbo if isinstance(elbo, ELBO) else None
    if elbo_object is None:
        elbo = contract.default_elbo if elbo is None else elbo
        if not isinstance(elbo, str):
            raise TypeError(
                f"elbo must be one of {list(ELBO_NAMES)} or a pyro.infer ELBO instance, "
                f"got {elbo!r}."
            )
        check_choice("elbo", elbo, ELBO_NAMES)
    elbo_name = elbo if elbo_object is None else type(elbo_object).__name__
    supported = contract.supported_elbos
    if supported is not None and elbo_name not in supported:
        raise ValueError(
            f"{type(contract).__name__} needs elbo in {list(supported)}, got {elbo_name!r}: "
            + contract.supported_elbos_reason
        )
    check_choice("backend", backend, BACKENDS)
    target = resolve_device(device)  # a misspelt device fails here, before any backend
    if backend == "numpyro":
        from bayesvae.backends.numpyro import svi_twin

        twin = svi_twin(contract)  # first: a model without a twin says so before the rest
        if twin is None:
            raise ValueError(f"{type(contract).__name__} has no NumPyro twin; use backend='pyro'.")
        refused = {
            "optimizer": optimizer != "adam",
            "weight_decay": weight_decay != 0.0,
            "lr_schedule": lr_schedule != "constant",
            "clip_norm": clip_norm is not None,
            "kl_warmup": kl_warmup != 0,
            "early_stopping": early_stopping is not None,
            "callbacks": bool(callbacks),
            "checkpoint_dir": checkpoint_dir is not None,
            "checkpoint_every": checkpoint_every != 1,
            "resume": resume,
            "strategy": strategy is not None,
            "num_particles": num_particles != 1,
            "elbo": elbo_name not in ("trace", "meanfield"),
        }
        bad = [name for name, is_set in refused.items() if is_set]
        if bad:
            raise ValueError(
                f"backend='numpyro' does not support {bad}; use backend='pyro' for them."
            )
        return _fit_numpyro(
            contract,
            twin,
            data[0],
            val,
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            betas=betas,
            elbo=elbo_name,
            seed=seed,
            progress=progress,
            device=target,
        )
    if elbo_object is not None:
        if num_particles != 1:
            raise ValueError("num_particles applies to objectives by name; set it on the ELBO.")
        objective: Any = elbo_object
        if contract.max_plate_nesting is not None:
            objective.max_plate_nesting = contract.max_plate_nesting
    jit_pending = elbo_name == "jit"
    if elbo_name == "jit" and kl_warmup:
        raise ValueError(
            "kl_warmup cannot be combined with elbo='jit': the traced graph would "
            "freeze the warm-up weight. Use elbo='trace' for warm-up."
        )
    if resume and checkpoint_dir is None:
        raise ValueError("resume=True needs checkpoint_dir= (the folder holding last.pt).")
    check_positive_int("checkpoint_every", checkpoint_every)
    for callback in callbacks:
        if not isinstance(callback, Callback):
            raise TypeError(f"callbacks must be Callback instances, got {type(callback).__name__}.")
    if strategy is not None:
        check_choice("strategy", strategy, STRATEGIES)
    ddp = None
    if strategy == "ddp":
        if isinstance(data[0], DataLoader):
            raise ValueError("strategy='ddp' shards array data; pass arrays, not a DataLoader.")
        ddp = setup_ddp(target)
        ddp.check_batch_size(batch_size)
        target = ddp.device

    # -- data: validated before anything trains
    generator = torch.Generator()
    generator.manual_seed(seed)
    on_cuda = target.type == "cuda"

    def to_device(batch: Any) -> tuple[torch.Tensor, ...]:
        batch = batch if isinstance(batch, (tuple, list)) else (batch,)
        return tuple(t.to(target, non_blocking=on_cuda) for t in batch)

    val_loader: Any = None
    eval_inputs: Any = None  # () -> iterable of (args, kwargs, weight)
    num_val = 0
    if is_program:
        assert isinstance(contract, PyroProgram)
        program_args, program_kwargs = program_inputs(contract.model_fn, data, program_kwargs)
        contract.to(target)
        program_args = tuple(_to_device(a, target) for a in program_args)
        program_kwargs = {k: _to_device(v, target) for k, v in program_kwargs.items()}
        _seed_everything(seed)
        with pyro.validation_enabled(True):
            num_train = check_program(contract, program_args, program_kwargs)
        train_steps: Any = _ProgramSteps(program_args, program_kwargs, eval_every)
        rows_per_step = num_train

        def eval_inputs() -> Any:
            return [(program_args, program_kwargs, 1.0)]

        num_eval = num_train
    elif isinstance(data[0], DataLoader):
        train_loader = data[0]
        num_train = _loader_size(train_loader)
        train_steps = _FamilySteps(train_loader, num_train, to_device)
        rows_per_step = None
        eval_tensors = None
    else:
        tensors, transform = _prepare_data(contract, data[0], "train")
        num_train = len(tensors[0])
        step_batch = min(batch_size, num_train)
        # A full batch is never shuffled: row order then carries no information, and models with
        # per-row parameters (indexed by position in the batch) stay aligned with their rows.
        storage = _storage_device(tensors, target)
        train_loader = TensorBatches(
            *(t.to(storage) for t in tensors),
            batch_size=step_batch,
            shuffle=step_batch < num_train,
            drop_last=True,
            generator=generator,
            transform=transform,
            device=target,
        )
        train_steps = _FamilySteps(train_loader, num_train, to_device)
        rows_per_step = None
        eval_tensors = _fixed(tuple(t[:eval_size] for t in tensors), transform, seed)
    if not is_program:
        if val is None:
            if eval_tensors is not None:
                eval_loader: Any = TensorBatches(
                    *eval_tensors, batch_size=max(batch_size, 512), shuffle=False, device=target
                )
                num_eval = len(eval_tensors[0])
            else:
                eval_loader, num_eval = None, 0
        elif isinstance(val, DataLoader):
            val_loader, num_val = val, _loader_size(val)
            eval_loader, num_eval = val_loader, num_val
        else:
            val_tensors, val_transform = _prepare_data(contract, val, "val")
            val_tensors = _fixed(val_tensors, val_transform, seed)
            num_val = len(val_tensors[0])
            val_loader = TensorBatches(
                *val_tensors, batch_size=max(batch_size, 512), shuffle=False, device=target
            )
            eval_loader, num_eval = val_loader, num_val
        if eval_loader is not None:

            def eval_inputs() -> Any:
                return (
                    (b, {"num_data": num_eval}, b[0].shape[0] / num_eval)
                    for b in map(to_device, eval_loader)
                )

    monitor = "val_elbo" if val_loader is not None else "train_elbo"
    all_callbacks = list(callbacks)
    if early_stopping is not None:
        all_callbacks.append(EarlyStopping(early_stopping, monitor=monitor))

    # -- objective, warm-up, parameters, optimizer
    if elbo_object is None:

        def make_objective(name: str) -> Any:
            return make_elbo(
                name,
                num_particles=num_particles,
                vectorize_particles=vectorize_particles,
                max_plate_nesting=contract.max_plate_nesting,
            )

        objective = make_objective(elbo_name)
    _seed_everything(seed + (ddp.rank if ddp is not None else 0))  # own noise on each rank
    contract.to(target)
    contract.train()
    steps_per_epoch = len(train_steps)
    warmup_steps = kl_warmup * steps_per_epoch
    step_counter = [0]

    def kl_weight(step: int) -> float:
        """Weight of the latent sites at (0-based) step ``step``: linear from 1/W to 1."""
        return 1.0 if warmup_steps == 0 else min(1.0, (step + 1) / warmup_steps)

    def current_kl_weight() -> float:
        return kl_weight(step_counter[0])

    model_fn = scale_latents(contract.model, current_kl_weight) if warmup_steps else contract.model
    guide_fn = scale_latents(contract.guide, current_kl_weight) if warmup_steps else contract.guide

    first_args, first_kwargs = next(iter(train_steps))
    with pyro.validation_enabled(True):  # one checked pass: shapes, supports, model/guide match
        params = _capture_params(
            model_fn,
            guide_fn,
            ddp.local_rows(first_args) if ddp is not None else first_args,
            first_kwargs,
        )
    if ddp is not None:
        ddp.broadcast(params)
    optim = _make_any_optimizer(optimizer, params, lr, weight_decay, betas)
    horizon = [epochs]  # the cosine schedule's rows: this fit's, also after a resume
    scheduler = (
        _make_scheduler(lr_schedule, optim, horizon, lr_decay)
        if isinstance(optimizer, str)
        else None
    )
    state = FitState(model=contract, optimizer=optim)
    best_value, best_epoch, start_epoch = -math.inf, None, 0

    settings: dict[str, Any] = dict(
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        elbo=elbo_name,
        num_particles=num_particles,
        optimizer=(
            optimizer
            if isinstance(optimizer, str)
            else optimizer.__name__
            if isinstance(optimizer, type)
            else type(optimizer).__name__
        ),
        weight_decay=weight_decay,
        betas=list(betas),
        lr_schedule=lr_schedule,
        clip_norm=clip_norm,
        kl_warmup=kl_warmup,
        early_stopping=early_stopping,
        device=str(target),
        strategy=strategy,
        world_size=ddp.world_size if ddp is not None else 1,
        seed=seed,
        num_train=num_train,
        num_val=num_val,
    )
    if is_program:
        for key in ("epochs", "batch_size", "strategy", "num_val"):
            del settings[key]
        settings.update(num_steps=num_steps, eval_every=eval_every, guide=contract.config["guide"])
    folder = Path(checkpoint_dir) if checkpoint_dir is not None else None
    if folder is not None:
        ckpt.remove_stale_temps(folder)  # what a killed write left

    def checkpoint_payload(epoch: int) -> dict[str, Any]:
        return {
            "family": contract.family,
            "model_config": contract.config,
            "model_state": model_state(contract),
            "optimizer": optim.state_dict(),
            "scheduler": scheduler.state_dict() if scheduler is not None else None,
            "epoch": epoch,
            "history": state.history,
            "best_value": best_value,
            "best_epoch": best_epoch,
            "step": step_counter[0],
            "rng": _rng_state(),
            "loader_rng": generator.get_state(),
            "callbacks": [c.state_dict() for c in all_callbacks],
            "settings": settings,
        }

    if resume:
        assert folder is not None
        saved = ckpt.load_checkpoint(folder / LAST_CHECKPOINT, device=target)
        if saved["model_config"] != contract.config:
            raise ValueError(
                f"cannot resume: the checkpoint in {folder} is for a model with config "
                f"{saved['model_config']}, not {contract.config}."
            )
        if saved["epoch"] > epochs:
            unit = "steps" if is_program else "epochs"
            done = saved["step"] if is_program else saved["epoch"]
            raise ValueError(
                f"cannot resume: the checkpoint in {folder} has already run {done} {unit}, more "
                f"than the {num_steps if is_program else epochs} asked for; ask for more."
            )
        load_model_state(contract, saved["model_state"])
        optim.load_state_dict(saved["optimizer"])
        if scheduler is not None and saved["scheduler"] is not None:
            scheduler.load_state_dict(saved["scheduler"])
            if lr_schedule == "cosine":  # this fit's horizon: the rate at the row reached
                row = scheduler.last_epoch
                factor = 0.5 * (1.0 + math.cos(math.pi * min(row, epochs) / epochs))
                for group, base in zip(optim.param_groups, scheduler.base_lrs, strict=True):
                    group["lr"] = base * factor
        start_epoch, state.history = saved["epoch"], list(saved["history"])
        best_value, best_epoch, step_counter[0] = (
            saved["best_value"],
            saved["best_epoch"],
            saved["step"],
        )
        _set_rng_state(saved["rng"])
        generator.set_state(saved["loader_rng"])
        for callback, cb_state in zip(all_callbacks, saved["callbacks"], strict=False):
            callback.load_state_dict(cb_state)
        logger.info("resuming from %s at row %d", folder / LAST_CHECKPOINT, start_epoch)

    total_steps = num_steps if is_program else epochs * steps_per_epoch
    unit = "evaluation block" if is_program else "epoch"  # what one history row covers
    bar = _progress_bar(progress, total=total_steps, initial=step_counter[0])
    for callback in all_callbacks:
        callback.on_fit_start(state)
    try:
        with (
            pyro.validation_enabled(validate_args),
            quiet_jit_deprecation(elbo_name == "jit"),
            warnings.catch_warnings(),
        ):
            # a NaN loss raises TrainingDivergedError below; Pyro's own warning would only repeat it
            warnings.filterwarnings("ignore", message="Encountered NaN", category=UserWarning)
            for epoch in range(start_epoch + 1, epochs + 1):
                state.epoch = epoch
                if is_program:  # the last block may be shorter
                    train_steps.length = min(eval_every, num_steps - step_counter[0])
                started = time.perf_counter()
                step_losses: list[torch.Tensor] = []
                seen, grad_norms, step = 0, [], 0
                for step, (args, step_kwargs) in enumerate(train_steps, start=1):
                    rows = rows_per_step if rows_per_step is not None else args[0].shape[0]
                    if ddp is not None:
                        args = ddp.local_rows(args)
                    if jit_pending:  # the first step compiles: fall back if the model cannot trace
                        objective, jit_pending = _first_jit_step(
                            objective,
                            model_fn,
                            guide_fn,
                            args,
                            step_kwargs,
                            lambda: make_objective("trace"),
                        )
                    loss = backward_loss(objective, model_fn, guide_fn, *args, **step_kwargs)
                    if ddp is not None:  # every rank sees the same averaged loss and gradients
                        loss = ddp.average_gradients(params, loss).to(loss.dtype)
                    if not on_cuda:  # on the CPU the check costs nothing; on CUDA: once a row
                        _check_loss(loss.reshape(1), epoch, 1, folder, first_step=step, unit=unit)
                    step_losses.append(loss)
                    if clip_norm is not None:
                        grad_norms.append(torch.nn.utils.clip_grad_norm_(params, clip_norm))
                    elif step % GRAD_NORM_EVERY == 1:  # a sample of steps keeps the hot path lean
                        grads = [p.grad for p in params if p.grad is not None]
                        if grads:
                            grad_norms.append(torch.nn.utils.get_total_norm(grads))  # no sync
                    optim.step()
                    optim.zero_grad(set_to_none=True)
                    step_counter[0] += 1
                    seen += rows
                    if bar is not None:
                        bar.update(1)
                stacked = torch.stack(step_losses) if step_losses else torch.zeros(1)
                _check_loss(stacked, epoch, 1, folder, unit=unit)  # the one host sync of the row
                loss_sum = float(stacked.sum())
                seconds = time.perf_counter() - started
                row: dict[str, float] = {"epoch": epoch}
                if is_program:
                    row["step"] = step_counter[0]
                # loss is -ELBO scaled to the full data set: per point, averaged over steps.
                row["train_elbo"] = -loss_sum / max(step, 1) / num_train
                if eval_inputs is not None:
                    with pyro.validation_enabled(False):
                        terms = evaluate_inputs(contract, eval_inputs(), num_eval)
                    if val_loader is not None:
                        row["val_elbo"] = terms["elbo"]
                    row.update({k: v for k, v in terms.items() if k.startswith(("recon", "kl"))})
                row.update(
                    kl_weight=kl_weight(step_counter[0] - 1),
                    lr=optim.param_groups[0]["lr"],
                    grad_norm=float(torch.stack(grad_norms).mean()) if grad_norms else math.nan,
                    seconds=seconds,
                )
                if is_program:
                    row["steps_per_s"] = step / seconds if seconds else math.nan
                else:
                    row["samples_per_s"] = seen / seconds if seconds else math.nan
                state.history.append(row)
                if scheduler is not None:
                    scheduler.step()
                improved = row[monitor] > best_value
                if improved:
                    best_value, best_epoch = row[monitor], epoch
                for callback in all_callbacks:
                    callback.on_epoch_end(state)
                if not all(bool(torch.isfinite(p).all()) for p in params):
                    raise TrainingDivergedError(
                        f"parameters became NaN or infinite by the end of {unit} {epoch}; "
                        "training stopped"
                        + (
                            f", and the checkpoints in {folder} are those of the last good {unit}"
                            if folder
                            else ""
                        )
                        + "."
                    )
                if folder is not None and (ddp is None or ddp.is_main):
                    due = epoch % checkpoint_every == 0 or epoch == epochs or state.stop
                    if due or improved:
                        payload = checkpoint_payload(epoch)
                    if due:
                        ckpt.save_checkpoint(folder / LAST_CHECKPOINT, payload)
                    if improved:
                        ckpt.save_checkpoint(folder / BEST_CHECKPOINT, payload)
                logger.info(
                    "row %d/%d: %s",
                    epoch,
                    epochs,
                    ", ".join(f"{k}={v:.4g}" for k, v in row.items() if k != "epoch"),
                )
                if bar is not None:
                    bar.set_postfix_str(_postfix(row))
                if state.stop:
                    logger.info("stopping after row %d: %s", epoch, state.stop_reason)
                    break
    finally:
        if bar is not None:
            bar.close()
    for callback in all_callbacks:
        callback.on_fit_end(state)
    contract.eval()
    return FitResult(
        model=contract,
        history=pd.DataFrame(state.history),
        device=target,
        best_epoch=best_epoch,
        stop_reason=state.stop_reason,
        settings=settings,
        data=(program_args, program_kwargs) if is_program else None,
    )


def _fit_numpyro(
    model: Any,
    twin: Any,
    train: Any,
    val: Any,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    betas: tuple[float, float],
    elbo: str,
    seed: int,
    progress: bool,
    device: torch.device,
) -> FitResult:
    """``fit(..., backend="numpyro")``: validate the data as the Pyro loop does, train the
    family's NumPyro ``twin`` (from :func:`bayesvae.backends.numpyro.svi_twin`), copy its
    weights into ``model``."""
    import pandas as pd

    if isinstance(train, DataLoader) or isinstance(val, DataLoader):
        raise ValueError("backend='numpyro' takes arrays, not DataLoaders.")
    tensors, transform = _prepare_data(model, train, "train")
    if len(tensors) != 1:
        raise ValueError("backend='numpyro' takes one data array.")
    val_array = None
    if val is not None:
        val_tensors, val_transform = _prepare_data(model, val, "val")
        val_array = _fixed(val_tensors, val_transform, seed)[0].numpy()
    twin.fit(
        tensors[0].numpy(),
        val_array,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        betas=betas,
        elbo=elbo,
        dynamic_binarization=transform is not None,
        seed=seed,
        progress=progress,
    )
    twin.export_to(model)
    target = device
    model.to(target)
    model.eval()
    settings = dict(
        backend="numpyro",
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        betas=list(betas),
        elbo=elbo,
        seed=seed,
        device=str(target),
        num_train=len(tensors[0]),
    )
    history = pd.DataFrame(twin.history)
    best = None
    if len(history):
        column = "val_elbo" if "val_elbo" in history else "train_elbo"
        best = int(history.loc[history[column].idxmax(), "epoch"])
    return FitResult(
        model=model, history=history, device=target, best_epoch=best, settings=settings
    )


def _check_loss(
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


def _first_jit_step(
    objective: Any,
    model_fn: Any,
    guide_fn: Any,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    make_fallback: Any,
) -> tuple[Any, bool]:
    """Compile the JIT objective on a trial pass; if the model does not trace, log why and
    return a Trace_ELBO instead (the trial's gradients are discarded either way)."""
    try:
        objective.differentiable_loss(model_fn, guide_fn, *args, **kwargs)
    except Exception as err:  # noqa: BLE001  (any tracing failure: fall back, say why)
        logger.warning(
            "elbo='jit': the model could not be traced (%s: %s); training with Trace_ELBO instead",
            type(err).__name__,
            str(err).splitlines()[0] if str(err) else "",
        )
        return make_fallback(), False
    return objective, False


def _postfix(row: dict[str, float]) -> str:
    parts = [f"train {row['train_elbo']:.2f}"]
    if "val_elbo" in row:
        parts.append(f"val {row['val_elbo']:.2f}")
    if "samples_per_s" in row:
        parts.append(f"{row['samples_per_s']:.0f} samples/s")
    else:
        parts.append(f"{row['steps_per_s']:.0f} steps/s")
    return ", ".join(parts)


def _progress_bar(progress: bool, *, total: int, initial: int) -> Any:
    if not progress or not sys.stderr.isatty():
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, unit="step", desc="fit", leave=True)
