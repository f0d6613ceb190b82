"""One SVI fit loop for every model family: :func:`fit` and its :class:`FitResult`.

The loop only relies on the model-family contract (``model``/``guide`` taking the data tensors of a
minibatch positionally plus ``num_data=``, an optional ``check_data``), never on a concrete family.
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
from bayesvae.infer.objectives import make_elbo, quiet_jit_deprecation, scale_latents

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

    def to_inference_data(self, *data: Any, num_samples: int = 500, seed: int = 0) -> Any:
        """ArviZ ``InferenceData`` from the fitted guide on ``data`` (posterior,
        posterior_predictive, observed_data, pointwise log_likelihood; one chain of independent
        draws). See :func:`bayesvae.diagnostics.svi_to_inference_data`."""
        from bayesvae.diagnostics import svi_to_inference_data

        return svi_to_inference_data(self.model, *data, num_samples=num_samples, seed=seed)

    def save(self, path: str | Path) -> Path:
        """Write a run folder (config.yaml, model.pt, metrics.csv); load with ``bayesvae.load``."""
        return ckpt.save_model(self.model, path, history=self.history, fit_config=self.settings)


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
def _prepare_data(model: Any, data: Any, name: str) -> tuple[tuple[torch.Tensor, ...], Any]:
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
    check = getattr(model, "check_data", None)
    try:
        if check is not None:
            converted = check(*tensors)
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


@torch.no_grad()
def evaluate(model: Any, batches: Any, num_data: int) -> dict[str, float]:
    """Unweighted ELBO of ``model.model``/``model.guide`` per data point, and its two terms.

    One draw of the guide per minibatch; ``recon`` sums the observed sites' log-likelihoods,
    ``kl`` the latent sites' ``log q - log p``; ``elbo = recon - kl`` (nats per data point).
    With several latent sites (e.g. the layers of a hierarchical VAE) each one's term is also
    returned as ``kl_<site>``. Discrete sites marked for enumeration are summed out of ``recon``
    (with TraceEnum_ELBO).
    """
    recon = kl = 0.0
    kl_sites: dict[str, float] = {}
    was_training = model.training
    model.eval()
    try:
        for batch in batches:
            size = batch[0].shape[0]
            guide_trace = poutine.trace(model.guide).get_trace(*batch, num_data=num_data)
            model_trace = poutine.trace(poutine.replay(model.model, trace=guide_trace)).get_trace(
                *batch, num_data=num_data
            )
            weight = size / num_data
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
                    max_plate_nesting=getattr(model, "max_plate_nesting", None) or float("inf")
                )
                replayed_guide = poutine.replay(model.guide, trace=guide_trace)
                elbo = -objective.loss(model.model, replayed_guide, *batch, num_data=num_data)
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
    name: str, optimizer: torch.optim.Optimizer, epochs: int, lr_decay: float
) -> torch.optim.lr_scheduler.LRScheduler | None:
    if name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    if name == "exponential":
        return torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=lr_decay)
    return None


def _capture_params(
    model_fn: Any, guide_fn: Any, batch: tuple[torch.Tensor, ...], num_data: int
) -> list[torch.Tensor]:
    """Run model and guide once (no gradients) and collect the unconstrained Pyro params."""
    with torch.no_grad(), poutine.trace(param_only=True) as capture:
        guide_trace = poutine.trace(guide_fn).get_trace(*batch, num_data=num_data)
        poutine.replay(model_fn, trace=guide_trace)(*batch, num_data=num_data)
    params = [site["value"].unconstrained() for site in capture.trace.nodes.values()]
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


def fit(
    model: Any,
    train: Any,
    val: Any = None,
    *,
    epochs: int = 10,
    batch_size: int = 128,
    lr: float = 1e-3,
    elbo: str | None = None,
    num_particles: int = 1,
    vectorize_particles: bool = True,
    optimizer: str = "adam",
    weight_decay: float = 0.0,
    betas: tuple[float, float] = (0.9, 0.999),
    lr_schedule: str = "constant",
    lr_decay: float = 0.99,
    clip_norm: float | None = None,
    kl_warmup: int = 0,
    early_stopping: int | None = None,
    callbacks: Sequence[Callback] = (),
    device: str | torch.device = "auto",
    seed: int = 0,
    progress: bool = True,
    checkpoint_dir: str | Path | None = None,
    resume: bool = False,
    eval_size: int = 5000,
    validate_args: bool = False,
    strategy: str | None = None,
    backend: str = "pyro",
) -> FitResult:
    """Fit ``model.model``/``model.guide`` to ``train`` by stochastic variational inference.

    Args:
        model: a model family (e.g. :class:`bayesvae.models.VAE`): an ``nn.Module`` with
            ``model(*batch, num_data=N)`` and ``guide(*batch, num_data=N)``.
        train: training data: an array/tensor ``(N, ...)``, a tuple of them (passed to the model
            positionally), :class:`~bayesvae.data.ImageData`, or a ``DataLoader`` yielding tuples.
        val: validation data in the same forms; its ELBO is computed after every epoch.
        epochs: number of passes over ``train`` (the total, counting resumed epochs).
        batch_size: minibatch size ``B``; the model's plate scales each minibatch by ``N / B``.
            The last incomplete minibatch of an epoch is dropped (the order is reshuffled).
        lr: learning rate.
        elbo: ``"trace"`` (Trace_ELBO), ``"meanfield"`` (TraceMeanField_ELBO, analytic KL where
            available), ``"jit"`` (JitTrace_ELBO), ``"enum"`` (TraceEnum_ELBO: discrete sites
            marked for enumeration are summed out) or ``"iwae"`` (the importance-weighted bound
            with ``K = num_particles``, :class:`~bayesvae.infer.objectives.ImportanceWeightedELBO`;
            ``train_elbo`` is then that bound). Default: the family's ``default_elbo``
            (``"enum"`` for :class:`~bayesvae.models.AnomalyMixture`), else ``"trace"``.
        num_particles: samples per step, vectorized when ``vectorize_particles``.
        optimizer: ``"adam"`` or ``"clippedadam"`` (Pyro's ClippedAdam); ``weight_decay`` and
            ``betas`` (Adam's moment decay rates) as in torch.
        lr_schedule: ``"constant"``, ``"cosine"`` (to 0 over ``epochs``) or ``"exponential"``
            (multiply by ``lr_decay`` each epoch).
        clip_norm: clip the global gradient norm to this value each step.
        kl_warmup: epochs over which the weight of latent sites rises linearly from ~0 to 1
            (applied per step to model and guide with a latent-only ``poutine.scale``).
        early_stopping: patience in epochs on ``val_elbo`` (``train_elbo`` without ``val``).
        callbacks: :class:`~bayesvae.infer.callbacks.Callback` objects.
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        seed: seeds torch, numpy, random and the minibatch order; same seed, same history on CPU.
        progress: show a progress bar (only when stderr is a terminal).
        checkpoint_dir: write ``last.pt`` after every epoch and ``best.pt`` when the monitored
            ELBO improves (atomically); a NaN loss leaves them as they were.
        resume: continue from ``checkpoint_dir/last.pt`` (same model config) up to ``epochs``.
        eval_size: without ``val``, ``recon``/``kl`` are evaluated on this many training points.
        validate_args: keep Pyro's distribution checks on inside the training loop (off by
            default for speed; model and guide are checked once, with validation, before training).
        backend: ``"pyro"`` (this loop) or ``"numpyro"``: the family's NumPyro twin
            (``model.numpyro_twin()``) trains with jitted SVI, each epoch in one compiled loop,
            and its weights are copied back into ``model``; options beyond epochs, batch size,
            Adam's lr/betas, ``elbo`` ("trace"/"meanfield"), seed, val and progress are refused.
        strategy: ``None`` (one process) or ``"ddp"``: data-parallel SVI over the processes of a
            ``torchrun`` launch (see :mod:`bayesvae.infer.distributed`); ``batch_size`` is the
            global minibatch, each rank fits its shard, gradients are averaged every step and
            rank 0 writes the checkpoints.

    Returns:
        :class:`FitResult` with the fitted model and per-epoch history.

    Raises:
        ValueError, TypeError: bad data or options, before any training.
        TrainingDivergedError: the loss became NaN/inf (names epoch and step).
    """
    import pandas as pd

    epochs = check_positive_int("epochs", epochs)
    batch_size = check_positive_int("batch_size", batch_size)
    lr = _check_positive_float("lr", lr)
    check_choice("optimizer", optimizer, OPTIMIZERS)
    if len(tuple(betas)) != 2 or not all(0 <= float(b) < 1 for b in betas):
        raise ValueError(f"betas must be two numbers in [0, 1), got {betas!r}.")
    betas = (float(betas[0]), float(betas[1]))
    check_choice("lr_schedule", lr_schedule, LR_SCHEDULES)
    if clip_norm is not None:
        clip_norm = _check_positive_float("clip_norm", clip_norm)
    if isinstance(kl_warmup, bool) or not isinstance(kl_warmup, int) or kl_warmup < 0:
        raise ValueError(f"kl_warmup must be a non-negative integer (epochs), got {kl_warmup!r}.")
    if elbo is None:
        elbo = getattr(model, "default_elbo", "trace")
    supported = getattr(model, "supported_elbos", None)
    if supported is not None and elbo not in supported:
        raise ValueError(
            f"{type(model).__name__} needs elbo in {list(supported)}, got {elbo!r}: "
            + getattr(model, "supported_elbos_reason", "other objectives do not fit this model.")
        )
    check_choice("backend", backend, BACKENDS)
    if backend == "numpyro":
        if getattr(model, "numpyro_twin", None) is None:
            raise ValueError(f"{type(model).__name__} has no NumPyro twin; use backend='pyro'.")
        twin = model.numpyro_twin()  # first: a model without a twin says so before anything else
        refused = {
            "optimizer": optimizer != "adam",
            "weight_decay": weight_decay != 0.0,
            "lr_schedule": lr_schedule != "constant",
            "clip_norm": clip_norm is not None,
            "kl_warmup": kl_warmup != 0,
            "early_stopping": early_stopping is not None,
            "callbacks": bool(callbacks),
            "checkpoint_dir": checkpoint_dir is not None,
            "resume": resume,
            "strategy": strategy is not None,
            "num_particles": num_particles != 1,
            "elbo": elbo not in ("trace", "meanfield"),
        }
        bad = [name for name, is_set in refused.items() if is_set]
        if bad:
            raise ValueError(
                f"backend='numpyro' does not support {bad}; use backend='pyro' for them."
            )
        return _fit_numpyro(
            model,
            twin,
            train,
            val,
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            betas=betas,
            elbo=elbo,
            seed=seed,
            progress=progress,
            device=device,
        )
    objective = make_elbo(
        elbo,
        num_particles=num_particles,
        vectorize_particles=vectorize_particles,
        max_plate_nesting=getattr(model, "max_plate_nesting", None),
    )
    jit_pending = elbo == "jit"

    def make_fallback() -> Any:
        return make_elbo(
            "trace",
            num_particles=num_particles,
            vectorize_particles=vectorize_particles,
            max_plate_nesting=getattr(model, "max_plate_nesting", None),
        )

    if elbo == "jit" and kl_warmup:
        raise ValueError(
            "kl_warmup cannot be combined with elbo='jit': the traced graph would "
            "freeze the warm-up weight. Use elbo='trace' for warm-up."
        )
    if resume and checkpoint_dir is None:
        raise ValueError("resume=True needs checkpoint_dir= (the folder holding last.pt).")
    for callback in callbacks:
        if not isinstance(callback, Callback):
            raise TypeError(f"callbacks must be Callback instances, got {type(callback).__name__}.")
    if not (hasattr(model, "model") and hasattr(model, "guide")):
        raise TypeError(f"model must have .model and .guide methods, got {type(model).__name__}.")
    target = resolve_device(device)
    if strategy is not None:
        check_choice("strategy", strategy, STRATEGIES)
    ddp = None
    if strategy == "ddp":
        if isinstance(train, DataLoader):
            raise ValueError("strategy='ddp' shards array data; pass arrays, not a DataLoader.")
        ddp = setup_ddp(target)
        ddp.check_batch_size(batch_size)
        target = ddp.device

    # -- data: validated before anything trains
    generator = torch.Generator()
    generator.manual_seed(seed)
    on_cuda = target.type == "cuda"
    if isinstance(train, DataLoader):
        train_loader, num_train, eval_tensors = train, _loader_size(train), None
    else:
        tensors, transform = _prepare_data(model, train, "train")
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
        eval_tensors = _fixed(tuple(t[:eval_size] for t in tensors), transform, seed)
    if val is None:
        val_loader, num_val = None, 0
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
        val_tensors, val_transform = _prepare_data(model, val, "val")
        val_tensors = _fixed(val_tensors, val_transform, seed)
        num_val = len(val_tensors[0])
        val_loader = TensorBatches(
            *val_tensors, batch_size=max(batch_size, 512), shuffle=False, device=target
        )
        eval_loader, num_eval = val_loader, num_val
    monitor = "val_elbo" if val_loader is not None else "train_elbo"
    all_callbacks = list(callbacks)
    if early_stopping is not None:
        all_callbacks.append(EarlyStopping(early_stopping, monitor=monitor))

    # -- model, warm-up, parameters, optimizer
    _seed_everything(seed + (ddp.rank if ddp is not None else 0))  # own noise on each rank
    model.to(target)
    model.train()
    steps_per_epoch = len(train_loader)
    warmup_steps = kl_warmup * steps_per_epoch
    step_counter = [0]

    def kl_weight(step: int) -> float:
        """Weight of the latent sites at (0-based) step ``step``: linear from 1/W to 1."""
        return 1.0 if warmup_steps == 0 else min(1.0, (step + 1) / warmup_steps)

    def current_kl_weight() -> float:
        return kl_weight(step_counter[0])

    model_fn = scale_latents(model.model, current_kl_weight) if warmup_steps else model.model
    guide_fn = scale_latents(model.guide, current_kl_weight) if warmup_steps else model.guide

    def to_device(batch: Any) -> tuple[torch.Tensor, ...]:
        batch = batch if isinstance(batch, (tuple, list)) else (batch,)
        return tuple(t.to(target, non_blocking=on_cuda) for t in batch)

    first_batch = to_device(next(iter(train_loader)))
    with pyro.validation_enabled(True):  # one checked pass: shapes, supports, model/guide match
        params = _capture_params(
            model_fn,
            guide_fn,
            ddp.local_rows(first_batch) if ddp is not None else first_batch,
            num_train,
        )
    if ddp is not None:
        ddp.broadcast(params)
    optim = _make_optimizer(optimizer, params, lr, weight_decay, betas)
    scheduler = _make_scheduler(lr_schedule, optim, epochs, lr_decay)
    state = FitState(model=model, optimizer=optim)
    best_value, best_epoch, start_epoch = -math.inf, None, 0

    settings = dict(
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        elbo=elbo,
        num_particles=num_particles,
        optimizer=optimizer,
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
    folder = Path(checkpoint_dir) if checkpoint_dir is not None else None

    def checkpoint_payload(epoch: int) -> dict[str, Any]:
        return {
            "family": getattr(model, "family", type(model).__name__),
            "model_config": getattr(model, "config", None),
            "model_state": ckpt.model_state(model),
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
        if saved["model_config"] != getattr(model, "config", None):
            raise ValueError(
                f"cannot resume: the checkpoint in {folder} is for a model with config "
                f"{saved['model_config']}, not {getattr(model, 'config', None)}."
            )
        ckpt.load_model_state(model, saved["model_state"])
        optim.load_state_dict(saved["optimizer"])
        if scheduler is not None and saved["scheduler"] is not None:
            scheduler.load_state_dict(saved["scheduler"])
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
        logger.info("resuming from %s at epoch %d", folder / LAST_CHECKPOINT, start_epoch)

    bar = _progress_bar(
        progress, total=epochs * steps_per_epoch, initial=start_epoch * steps_per_epoch
    )
    for callback in all_callbacks:
        callback.on_fit_start(state)
    try:
        with (
            pyro.validation_enabled(validate_args),
            quiet_jit_deprecation(elbo == "jit"),
            warnings.catch_warnings(),
        ):
            # a NaN loss raises TrainingDivergedError below; Pyro's own warning would only repeat it
            warnings.filterwarnings("ignore", message="Encountered NaN", category=UserWarning)
            for epoch in range(start_epoch + 1, epochs + 1):
                state.epoch = epoch
                started = time.perf_counter()
                step_losses: list[torch.Tensor] = []
                seen, grad_norms = 0, []
                for step, batch in enumerate(train_loader, start=1):
                    batch = to_device(batch)
                    rows = batch[0].shape[0]
                    if ddp is not None:
                        batch = ddp.local_rows(batch)
                    if jit_pending:  # the first step compiles: fall back if the model cannot trace
                        objective, jit_pending = _first_jit_step(
                            objective, model_fn, guide_fn, batch, num_train, make_fallback
                        )
                    loss = objective.differentiable_loss(
                        model_fn, guide_fn, *batch, num_data=num_train
                    )
                    loss.backward()
                    loss = loss.detach()
                    if ddp is not None:  # every rank sees the same averaged loss and gradients
                        loss = ddp.average_gradients(params, loss).to(loss.dtype)
                    if not on_cuda:  # on the CPU the check costs nothing; on CUDA: once an epoch
                        _check_loss(loss.reshape(1), epoch, 1, folder, first_step=step)
                    step_losses.append(loss)
                    if clip_norm is not None:
                        grad_norms.append(torch.nn.utils.clip_grad_norm_(params, clip_norm))
                    elif step % GRAD_NORM_EVERY == 1:  # a sample of steps keeps the hot path lean
                        grads = [p.grad for p in params if p.grad is not None]
                        grad_norms.append(torch.nn.utils.get_total_norm(grads))  # no host sync
                    optim.step()
                    optim.zero_grad(set_to_none=True)
                    step_counter[0] += 1
                    seen += rows
                    if bar is not None:
                        bar.update(1)
                stacked = torch.stack(step_losses) if step_losses else torch.zeros(1)
                _check_loss(stacked, epoch, 1, folder)  # the one host sync of the epoch
                loss_sum = float(stacked.sum())
                seconds = time.perf_counter() - started
                row: dict[str, float] = {
                    "epoch": epoch,
                    # loss is -ELBO scaled to the full data set: per point, averaged over steps.
                    "train_elbo": -loss_sum / max(step, 1) / num_train,
                }
                if eval_loader is not None:
                    with pyro.validation_enabled(False):
                        terms = evaluate(model, map(to_device, eval_loader), num_eval)
                    if val_loader is not None:
                        row["val_elbo"] = terms["elbo"]
                    row.update({k: v for k, v in terms.items() if k.startswith(("recon", "kl"))})
                row.update(
                    kl_weight=kl_weight(step_counter[0] - 1),
                    lr=optim.param_groups[0]["lr"],
                    grad_norm=float(torch.stack(grad_norms).mean()) if grad_norms else math.nan,
                    seconds=seconds,
                    samples_per_s=seen / seconds if seconds else math.nan,
                )
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
                        f"parameters became NaN or infinite by the end of epoch {epoch}; "
                        "training stopped"
                        + (
                            f", and the checkpoints in {folder} are those of the last good epoch"
                            if folder
                            else ""
                        )
                        + "."
                    )
                if folder is not None and (ddp is None or ddp.is_main):
                    payload = checkpoint_payload(epoch)
                    ckpt.save_checkpoint(folder / LAST_CHECKPOINT, payload)
                    if improved:
                        ckpt.save_checkpoint(folder / BEST_CHECKPOINT, payload)
                logger.info(
                    "epoch %d/%d: %s",
                    epoch,
                    epochs,
                    ", ".join(f"{k}={v:.4g}" for k, v in row.items() if k != "epoch"),
                )
                if bar is not None:
                    bar.set_postfix_str(_postfix(row))
                if state.stop:
                    logger.info("stopping after epoch %d: %s", epoch, state.stop_reason)
                    break
    finally:
        if bar is not None:
            bar.close()
    for callback in all_callbacks:
        callback.on_fit_end(state)
    model.eval()
    return FitResult(
        model=model,
        history=pd.DataFrame(state.history),
        device=target,
        best_epoch=best_epoch,
        stop_reason=state.stop_reason,
        settings=settings,
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
    device: str | torch.device,
) -> FitResult:
    """``fit(..., backend="numpyro")``: validate the data as the Pyro loop does, train the
    family's NumPyro ``twin`` (from ``model.numpyro_twin()``), copy its weights into ``model``."""
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
    target = resolve_device(device)
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
) -> None:
    """Raise :class:`TrainingDivergedError` naming the epoch and the first step whose loss in
    ``losses`` (one per step) is NaN or infinite."""
    finite = torch.isfinite(losses)
    if bool(finite.all()):
        return
    index = int((~finite).nonzero()[0, 0])
    step = first_step if first_step is not None else step_offset + index
    raise TrainingDivergedError(
        f"the loss became {float(losses[index])} at epoch {epoch}, step {step}; training stopped"
        + (f" and the checkpoints in {folder} are those of the last good epoch" if folder else "")
        + ". Try a lower lr, clip_norm=, or check the data."
    )


def _first_jit_step(
    objective: Any,
    model_fn: Any,
    guide_fn: Any,
    batch: tuple[torch.Tensor, ...],
    num_train: int,
    make_fallback: Any,
) -> tuple[Any, bool]:
    """Compile the JIT objective on a trial pass; if the model does not trace, log why and
    return a Trace_ELBO instead (the trial's gradients are discarded either way)."""
    try:
        objective.differentiable_loss(model_fn, guide_fn, *batch, num_data=num_train)
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
    parts.append(f"{row['samples_per_s']:.0f} samples/s")
    return ", ".join(parts)


def _progress_bar(progress: bool, *, total: int, initial: int) -> Any:
    if not progress or not sys.stderr.isatty():
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, unit="step", desc="fit", leave=True)
