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
from typing import TYPE_CHECKING, Any

import numpy as np
import pyro
import torch
from torch.utils.data import DataLoader

from bayesvae.backends.schedules import LR_SCHEDULES, check_betas
from bayesvae.data.datasets import ImageData
from bayesvae.data.loaders import DynamicBinarize, TensorBatches
from bayesvae.data.validation import (
    check_choice,
    check_non_negative_int,
    check_non_negative_number,
    check_number,
    check_positive_int,
    check_positive_number,
)
from bayesvae.infer import checkpoint as ckpt
from bayesvae.infer.callbacks import Callback, Checkpointer, EarlyStopping, FitState, KLWarmup
from bayesvae.infer.distributed import setup_ddp
from bayesvae.infer.engine import (
    SVIEngine,
    TrainingDivergedError,
    check_losses,
    evaluate,
    evaluate_inputs,
)
from bayesvae.infer.objectives import (
    ELBO_NAMES,
    PARTICLE_BOUNDS,
    make_elbo,
    quiet_jit_deprecation,
)
from bayesvae.models.contract import ModelContract
from bayesvae.models.program import (
    PyroProgram,
    as_model,
    check_program,
    pandas_coords,
    program_inputs,
)
from bayesvae.runs import RunWriter, load_model_state, model_state, save_model, save_program

if TYPE_CHECKING:
    from bayesvae.backends.numpyro.loop import SVISettings, SVITwin

__all__ = [
    "fit",
    "FitResult",
    "evaluate",
    "evaluate_inputs",
    "resolve_device",
    "SVIEngine",
    "TrainingDivergedError",
]

logger = logging.getLogger(__name__)

OPTIMIZERS = ("adam", "clippedadam")
STRATEGIES = ("ddp",)
BACKENDS = ("pyro", "numpyro")
LAST_CHECKPOINT, BEST_CHECKPOINT = "last.pt", "best.pt"


@dataclass
class FitResult:
    """What :func:`fit` returns.

    Attributes:
        model: the fitted model, on ``device``.
        history: one row per epoch: ``epoch``, ``train_elbo`` (the objective being maximised,
            per data point: it includes β and the KL warm-up weight), ``val_elbo`` (with ``val``),
            ``recon`` and ``kl`` (per data point, unweighted, on ``val`` or else on up to
            ``eval_size`` training points, none with ``eval_size=0``; ``recon - kl`` is the
            ELBO), ``kl_<site>`` per latent site when there are several (hierarchical VAE
            layers), ``kl_weight``, ``lr``, ``grad_norm`` (mean global gradient norm before
            clipping: over every step when clipping, else over every 10th step), ``seconds``,
            ``samples_per_s``.
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
        coords: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> Any:
        """ArviZ ``InferenceData`` from the fitted guide (posterior, posterior_predictive,
        observed_data, pointwise log_likelihood; for a program also constant_data; one chain of
        independent draws) on ``data`` — by default, a program's own fitted arguments; dims
        labelled by ``coords`` (``{"school": names}``). See
        :func:`bayesvae.infer.posterior.svi_to_inference_data`."""
        from bayesvae.infer.posterior import svi_to_inference_data

        if not data and not kwargs and self.data is not None:
            data, kwargs = self.data
        return svi_to_inference_data(
            self.model,
            *data,
            num_samples=num_samples,
            seed=seed,
            vectorize=vectorize,
            coords=coords,
            **kwargs,
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


def _check_seed(seed: Any) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise TypeError(f"seed must be a non-negative integer, got {seed!r}.")
    return int(seed)


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
    alpha: float | None = None,
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
            ``"renyi"`` (the variational Rényi bound of order ``alpha``, Li & Turner 2016, with
            per-point weights like ``"iwae"``), ``"cubo"`` (the χ² upper bound, Dieng et al.
            2017, minimised to fit a guide to a model without learnable parameters; the history's
            ``train_elbo`` is then ``-CUBO``) — or any Pyro ELBO instance
            (``TraceGraph_ELBO()``, ...). Default: the model's ``default_elbo``.
        num_particles: samples per step, vectorized when ``vectorize_particles`` (names only);
            the bound's ``K`` for ``"iwae"``, ``"renyi"`` and ``"cubo"`` (the last two need 2+).
        alpha: order of ``elbo="renyi"`` (default 0.5): 0 is the IWAE bound, 1 the ELBO,
            negative values give upper bounds. A program's own ``alpha`` argument goes in
            ``model_kwargs``.
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
            The per-epoch evaluation draws from its own stream (seeded by ``seed`` and the
            epoch), so what is evaluated (``eval_size``, ``val``) does not change the training.
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
        eval_size: a family without ``val`` evaluates ``recon``/``kl`` on this many points after
            each epoch; ``0``: no evaluation, the rows carry ``train_elbo`` only (for many short
            full-batch epochs, where the evaluation would cost as much as the training step).
        validate_args: keep Pyro's distribution checks on inside the training loop (off by
            default for speed; model and guide are checked once, with validation, before).
        strategy: ``None`` or ``"ddp"`` (data-parallel SVI under ``torchrun``; see
            :mod:`bayesvae.infer.distributed`): a family's minibatch is split across the ranks;
            a program runs whole on every rank with the rank's own random stream (its own guide
            draws and ``subsample_size`` minibatch), and the gradients are averaged: ``W``
            ranks give a gradient ``W`` times less noisy, as ``W`` particles or a ``W``-times
            larger minibatch would.
        backend: ``"pyro"`` (this loop) or ``"numpyro"``: a family's NumPyro twin trains with
            jitted SVI and its weights are copied back; options beyond epochs, batch size, Adam's
            lr/betas, ``weight_decay`` (torch's coupled L2, as here), ``lr_schedule``/
            ``lr_decay`` (set per epoch, as here), ``elbo``
            ("trace"/"meanfield"), seed, val, progress and ``early_stopping`` (which keeps the
            best epoch's weights) are refused.

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
    lr = check_positive_number("lr", lr)
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
    betas = check_betas(betas)
    weight_decay = check_non_negative_number("weight_decay", weight_decay)
    if lr_schedule is None:
        lr_schedule = "cosine" if is_program and isinstance(optimizer, str) else "constant"
    check_choice("lr_schedule", lr_schedule, LR_SCHEDULES)
    lr_decay = check_number("lr_decay", lr_decay, low=0, high=1, low_open=True)
    if isinstance(optimizer, PyroOptim) and lr_schedule != "constant":
        raise ValueError("lr_schedule applies to optimizers by name; a Pyro optimizer has its own.")
    if clip_norm is not None:
        clip_norm = check_positive_number("clip_norm", clip_norm)
    kl_warmup = check_non_negative_int("kl_warmup", kl_warmup)
    if early_stopping is not None:
        early_stopping = check_positive_int("early_stopping", early_stopping)
    eval_size = check_non_negative_int("eval_size", eval_size)
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
    if alpha is not None and elbo_name != "renyi":
        raise ValueError(
            f"alpha is the order of elbo='renyi', got it with elbo={elbo_name!r}"
            + (
                "; a program's own alpha goes in model_kwargs={'alpha': ...}."
                if is_program
                else "."
            )
        )
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
            "clip_norm": clip_norm is not None,
            "kl_warmup": kl_warmup != 0,
            "callbacks": bool(callbacks),
            "checkpoint_dir": checkpoint_dir is not None,
            "checkpoint_every": checkpoint_every != 1,
            "resume": resume,
            "strategy": strategy is not None,
            "num_particles": num_particles != 1 and elbo_name not in PARTICLE_BOUNDS,
            "elbo": elbo_name not in twin.supported_elbos,
        }
        bad = [name for name, is_set in refused.items() if is_set]
        if bad:
            objectives = (
                f" (its twin trains with elbo in {list(twin.supported_elbos)})"
                if "elbo" in bad
                else ""
            )
            raise ValueError(
                f"backend='numpyro' does not support {bad}{objectives}; use backend='pyro' for "
                "them."
            )
        from bayesvae.backends.numpyro.loop import SVISettings

        settings = SVISettings(
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            betas=betas,
            lr_schedule=lr_schedule,
            lr_decay=lr_decay,
            weight_decay=weight_decay,
            seed=seed,
            early_stopping=early_stopping,
            progress=progress,
        )
        return _fit_numpyro(
            contract,
            twin,
            data[0],
            val,
            settings,
            elbo=elbo_name,
            device=target,
            particle_options=(
                dict(num_particles=num_particles, alpha=alpha)
                if elbo_name in PARTICLE_BOUNDS
                else {}
            ),
        )
    if elbo_object is not None:
        if num_particles != 1:
            raise ValueError("num_particles applies to objectives by name; set it on the ELBO.")
        objective: Any = elbo_object
        if contract.max_plate_nesting is not None:
            objective.max_plate_nesting = contract.max_plate_nesting
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
        if not is_program and isinstance(data[0], DataLoader):
            raise ValueError("strategy='ddp' shards array data; pass arrays, not a DataLoader.")
        ddp = setup_ddp(target)
        if not is_program:  # a family's minibatch is split across ranks
            ddp.check_batch_size(batch_size)
        target = ddp.device
    shard = ddp.local_rows if ddp is not None and not is_program else (lambda rows: rows)

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
        contract.input_coords = pandas_coords(contract.model_fn, data, program_kwargs)
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
        eval_tensors = (
            _fixed(tuple(t[:eval_size] for t in tensors), transform, seed) if eval_size else None
        )
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

    # -- objective, engine (parameters, optimizer, schedule), callbacks
    if elbo_object is None:

        def make_objective(name: str) -> Any:
            return make_elbo(
                name,
                num_particles=num_particles,
                vectorize_particles=vectorize_particles,
                max_plate_nesting=contract.max_plate_nesting,
                alpha=alpha if name == "renyi" else None,
            )

        objective = make_objective(elbo_name)
    _seed_everything(seed + (ddp.rank if ddp is not None else 0))  # own noise on each rank
    contract.to(target)
    contract.train()
    state = FitState(model=contract, optimizer=None)  # type: ignore[arg-type]
    warmup = KLWarmup(kl_warmup * len(train_steps)) if kl_warmup else None
    engine = SVIEngine(
        warmup.wrap(contract.model, state) if warmup else contract.model,
        warmup.wrap(contract.guide, state) if warmup else contract.guide,
        objective,
        optimizer=optimizer,
        lr=lr,
        weight_decay=weight_decay,
        betas=betas,
        lr_schedule=lr_schedule,
        lr_decay=lr_decay,
        horizon=epochs,
        clip_norm=clip_norm,
        ddp=ddp,
        jit_fallback=(lambda: make_objective("trace")) if elbo_name == "jit" else None,
    )
    first_args, first_kwargs = next(iter(train_steps))
    engine.init(*shard(first_args), **first_kwargs)
    state.optimizer = engine.optimizer
    start_epoch = 0

    settings: dict[str, Any] = dict(
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        elbo=elbo_name,
        num_particles=num_particles,
        **({"alpha": objective.alpha} if elbo_name == "renyi" else {}),
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
        for key in ("epochs", "batch_size", "num_val"):
            del settings[key]
        settings.update(num_steps=num_steps, eval_every=eval_every, guide=contract.config["guide"])
    folder = Path(checkpoint_dir) if checkpoint_dir is not None else None
    if folder is not None:
        ckpt.remove_stale_temps(folder)  # what a killed write left
    unit = "evaluation block" if is_program else "epoch"  # what one history row covers

    def check_parameters() -> None:
        if not engine.parameters_finite():
            raise TrainingDivergedError(
                f"parameters became NaN or infinite by the end of {unit} {state.epoch}; "
                "training stopped"
                + (
                    f", and the checkpoints in {folder} are those of the last good {unit}"
                    if folder
                    else ""
                )
                + "."
            )

    resumable = list(callbacks) + (
        [EarlyStopping(early_stopping, monitor=monitor)] if early_stopping is not None else []
    )
    all_callbacks = resumable + ([warmup] if warmup else [])

    def checkpoint_payload() -> dict[str, Any]:
        return {
            "family": contract.family,
            "model_config": contract.config,
            "model_state": model_state(contract),
            **engine.state_dict(),
            "epoch": state.epoch,
            "history": state.history,
            "best_value": state.best_value,
            "best_epoch": state.best_epoch,
            "step": state.step,
            "rng": _rng_state(),
            "loader_rng": generator.get_state(),
            "callbacks": [c.state_dict() for c in resumable],
            "settings": settings,
        }

    if folder is not None and (ddp is None or ddp.is_main):  # the checkpointer comes last
        all_callbacks.append(
            Checkpointer(
                folder,
                every=checkpoint_every,
                last_row=epochs,
                payload=checkpoint_payload,
                check=check_parameters,
                last_name=LAST_CHECKPOINT,
                best_name=BEST_CHECKPOINT,
            )
        )

    if resume:
        assert folder is not None
        saved = ckpt.load_checkpoint(folder / LAST_CHECKPOINT, device=target)
        if saved["model_config"] != contract.config:
            raise ValueError(
                f"cannot resume: the checkpoint in {folder} is for a model with config "
                f"{saved['model_config']}, not {contract.config}."
            )
        if saved["epoch"] > epochs:
            done_unit = "steps" if is_program else "epochs"
            done = saved["step"] if is_program else saved["epoch"]
            raise ValueError(
                f"cannot resume: the checkpoint in {folder} has already run {done} {done_unit}, "
                f"more than the {num_steps if is_program else epochs} asked for; ask for more."
            )
        load_model_state(contract, saved["model_state"])
        engine.load_state_dict(saved, horizon=epochs)
        start_epoch, state.history = saved["epoch"], list(saved["history"])
        state.best_value, state.best_epoch, state.step = (
            saved["best_value"],
            saved["best_epoch"],
            saved["step"],
        )
        _set_rng_state(saved["rng"])
        generator.set_state(saved["loader_rng"])
        for callback, cb_state in zip(resumable, saved["callbacks"], strict=False):
            callback.load_state_dict(cb_state)
        logger.info("resuming from %s at row %d", folder / LAST_CHECKPOINT, start_epoch)

    # -- the loop: rows of steps, each row evaluated, then the callbacks
    total_steps = num_steps if is_program else epochs * len(train_steps)
    bar = _progress_bar(progress, total=total_steps, initial=state.step)
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
                    train_steps.length = min(eval_every, num_steps - state.step)
                started = time.perf_counter()
                step_losses: list[torch.Tensor] = []
                seen, step = 0, 0
                for step, (args, step_kwargs) in enumerate(train_steps, start=1):
                    rows = rows_per_step if rows_per_step is not None else args[0].shape[0]
                    loss = engine.step(*shard(args), **step_kwargs)
                    if not on_cuda:  # on the CPU the check costs nothing; on CUDA: once a row
                        check_losses(loss.reshape(1), epoch, 1, folder, first_step=step, unit=unit)
                    step_losses.append(loss)
                    state.step += 1
                    seen += rows
                    if bar is not None:
                        bar.update(1)
                stacked = torch.stack(step_losses) if step_losses else torch.zeros(1)
                check_losses(stacked, epoch, 1, folder, unit=unit)  # the one host sync of the row
                loss_sum = float(stacked.sum())
                seconds = time.perf_counter() - started
                row: dict[str, float] = {"epoch": epoch}
                if is_program:
                    row["step"] = state.step
                # loss is -ELBO scaled to the full data set: per point, averaged over steps.
                row["train_elbo"] = -loss_sum / max(step, 1) / num_train
                if eval_inputs is not None:
                    # the evaluation's guide draws come from their own seeded stream: training
                    # draws the same numbers whatever is evaluated (eval_size, val), and every
                    # rank of a data-parallel fit gets the same row, so the same stop
                    with torch.random.fork_rng(devices=[target] if on_cuda else []):
                        torch.manual_seed(seed + 7919 * epoch)
                        terms = engine.evaluate(contract, eval_inputs(), num_eval)
                    if val_loader is not None:
                        row["val_elbo"] = terms["elbo"]
                    row.update({k: v for k, v in terms.items() if k.startswith(("recon", "kl"))})
                row.update(
                    kl_weight=warmup.weight(state.step - 1) if warmup else 1.0,
                    lr=engine.current_lr,
                    grad_norm=engine.mean_grad_norm(),
                    seconds=seconds,
                )
                if is_program:
                    row["steps_per_s"] = step / seconds if seconds else math.nan
                else:
                    row["samples_per_s"] = seen / seconds if seconds else math.nan
                state.history.append(row)
                engine.end_row()
                if row[monitor] > state.best_value:
                    state.best_value, state.best_epoch = row[monitor], epoch
                for callback in all_callbacks:
                    callback.on_epoch_end(state)
                check_parameters()
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
        best_epoch=state.best_epoch,
        stop_reason=state.stop_reason,
        settings=settings,
        data=(program_args, program_kwargs) if is_program else None,
    )


def _fit_numpyro(
    model: Any,
    twin: SVITwin,
    train: Any,
    val: Any,
    settings: SVISettings,
    *,
    elbo: str,
    device: torch.device,
    particle_options: dict[str, Any] | None = None,
) -> FitResult:
    """``fit(..., backend="numpyro")``: validate the data as the Pyro loop does, train the
    family's NumPyro ``twin`` (from :func:`bayesvae.backends.numpyro.svi_twin`) as ``settings``
    say, copy its weights into ``model``. With ``early_stopping`` the weights are those of the
    best epoch (the jitted loop writes no checkpoints to load them from)."""
    import pandas as pd

    if isinstance(train, DataLoader) or isinstance(val, DataLoader):
        raise ValueError("backend='numpyro' takes arrays, not DataLoaders.")
    tensors, transform = _prepare_data(model, train, "train")
    if len(tensors) != 1:
        raise ValueError("backend='numpyro' takes one data array.")
    val_array = None
    if val is not None:
        val_tensors, val_transform = _prepare_data(model, val, "val")
        val_array = _fixed(val_tensors, val_transform, settings.seed)[0].numpy()
    twin.fit(
        tensors[0].numpy(),
        val_array,
        settings,
        elbo=elbo,
        dynamic_binarization=transform is not None,
        **(particle_options or {}),
    )
    twin.export_to(model)
    model.to(device)
    model.eval()
    recorded = dict(
        backend="numpyro",
        epochs=settings.epochs,
        batch_size=settings.batch_size,
        lr=settings.lr,
        betas=list(settings.betas),
        lr_schedule=settings.lr_schedule,
        lr_decay=settings.lr_decay,
        weight_decay=settings.weight_decay,
        elbo=elbo,
        seed=settings.seed,
        device=str(device),
        num_train=len(tensors[0]),
        **(particle_options or {}),
    )
    return FitResult(
        model=model,
        history=pd.DataFrame(twin.history),
        device=device,
        best_epoch=twin.best_epoch,
        stop_reason=twin.stop_reason,
        settings=recorded,
    )


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
