"""The one jitted NumPyro SVI loop every twin trains with: each epoch's minibatches (reshuffled,
the last incomplete one dropped) run in one ``jax.lax.scan`` under ``jax.jit``, with one host
sync per epoch for the loss."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, runtime_checkable

import jax
import jax.numpy as jnp
import numpy as np
from numpyro.optim import Adam

from bayesvae.backends.schedules import LR_SCHEDULES, check_betas, lr_factor
from bayesvae.data.validation import (
    check_choice,
    check_non_negative_number,
    check_number,
    check_positive_int,
    check_positive_number,
)

__all__ = [
    "adam",
    "batches_per_epoch",
    "run_svi",
    "train",
    "CoupledDecayAdam",
    "SVIRun",
    "SVISettings",
    "SVITwin",
    "TwinRecord",
]


@dataclass(frozen=True)
class SVISettings:
    """How a twin trains: the loop's and the optimizer's settings, one object that
    ``bayesvae.fit(..., backend="numpyro")`` builds once and every twin's ``fit`` takes.

    Attributes:
        epochs: passes over the data (at most, with ``early_stopping``).
        batch_size: rows per minibatch (the last incomplete one of an epoch is dropped).
        lr, betas: Adam's rate and moment decays.
        lr_schedule, lr_decay: the rate per epoch (:func:`adam`).
        weight_decay: torch's coupled L2 (:class:`CoupledDecayAdam`).
        seed: the minibatch order and the SVI keys.
        early_stopping: patience in epochs on the monitored ELBO, or ``None``.
        progress: a progress bar over the epochs.
    """

    epochs: int = 10
    batch_size: int = 128
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    lr_schedule: str = "constant"
    lr_decay: float = 0.99
    weight_decay: float = 0.0
    seed: int = 0
    early_stopping: int | None = None
    progress: bool = False

    def __post_init__(self) -> None:
        check_positive_int("epochs", self.epochs)
        check_positive_int("batch_size", self.batch_size)
        if self.early_stopping is not None:
            check_positive_int("early_stopping", self.early_stopping)
        check_positive_number("lr", self.lr)
        check_betas(self.betas)
        check_choice("lr_schedule", self.lr_schedule, LR_SCHEDULES)
        check_number("lr_decay", self.lr_decay, low=0, high=1, low_open=True)
        check_non_negative_number("weight_decay", self.weight_decay)


class TwinRecord:
    """The run fields of :class:`SVITwin`, empty before ``fit``; :meth:`keep` fills them."""

    def __init__(self) -> None:
        self.history: list[dict[str, float]] = []
        self.best_epoch: int | None = None
        self.stop_reason: str | None = None

    def keep(self, run: SVIRun) -> SVIRun:
        """Copy ``run``'s history, best epoch and stop reason; returns ``run``."""
        self.history, self.best_epoch, self.stop_reason = (
            run.history,
            run.best_epoch,
            run.stop_reason,
        )
        return run


@dataclass
class SVIRun:
    """What :func:`run_svi` returns.

    Attributes:
        state: the SVI state to keep: the last epoch's, or the best epoch's with early stopping.
        params: ``svi.get_params(state)``, the guide's and networks' parameters in their
            constrained spaces (computed in one compiled call).
        history: one row per epoch that ran (``epoch``, ``train_elbo``, ``val_elbo`` with a
            validation set, ``lr`` with ``lr_of_epoch``, ``seconds``, ``samples_per_s``; ELBOs
            per data point).
        best_epoch: the epoch with the best monitored ELBO (``val_elbo``, else ``train_elbo``).
        stop_reason: why training ended before ``epochs``, or ``None`` when it ran them all.
    """

    state: Any
    params: dict[str, Any]
    history: list[dict[str, float]]
    best_epoch: int | None
    stop_reason: str | None


@runtime_checkable
class SVITwin(Protocol):
    """What ``bayesvae.fit(..., backend="numpyro")`` uses of a family's NumPyro SVI twin (the
    builders in :data:`bayesvae.backends.numpyro.SVI_TWINS` return one)."""

    #: objectives :meth:`fit` trains with; ``bayesvae.fit`` refuses the others up front
    supported_elbos: ClassVar[tuple[str, ...]]
    #: the :class:`SVIRun` fields of the last :meth:`fit` (empty / ``None`` before it)
    history: list[dict[str, float]]
    best_epoch: int | None
    stop_reason: str | None

    def fit(
        self, x: Any, val: Any = None, settings: SVISettings | None = None, **options: Any
    ) -> SVITwin:
        """Train with :func:`train` on ``x`` (``val`` monitored) as ``settings`` say (the twin's
        defaults when ``None``); ``options`` are the family's own (``elbo``, ...). Returns the
        twin."""
        ...

    def export_to(self, model: Any) -> Any:
        """Copy the trained parameters into the Pyro ``model`` (or its param store)."""
        ...


def batches_per_epoch(num_data: int, batch_size: int) -> int:
    """Minibatches in one epoch of :func:`run_svi` (the last incomplete one is dropped)."""
    return num_data // min(batch_size, num_data)


def adam(
    lr: float,
    betas: tuple[float, float],
    *,
    epochs: int,
    steps_per_epoch: int,
    lr_schedule: str = "constant",
    lr_decay: float = 0.99,
    weight_decay: float = 0.0,
) -> tuple[Any, Callable[[int], float]]:
    """NumPyro's ``Adam`` as ``bayesvae.fit`` sets torch's: the learning-rate schedule
    (:func:`bayesvae.backends.schedules.lr_factor`: ``"constant"``, ``"cosine"`` over ``epochs``
    or ``"exponential"`` by ``lr_decay``) changes the rate between epochs, as the Pyro loop does,
    and ``weight_decay`` adds ``weight_decay * param`` to each gradient before the Adam step (the
    L2 penalty of ``torch.optim.Adam(weight_decay=)``, coupled, not AdamW's decoupled decay).
    Returns the optimizer and ``lr_of_epoch(e)``, the rate it uses in epoch ``e`` (from 0)."""
    weight_decay = check_non_negative_number("weight_decay", weight_decay)
    rates = [
        lr * lr_factor(lr_schedule, epoch, horizon=epochs, decay=lr_decay)
        for epoch in range(epochs)
    ]
    table = jnp.asarray(rates, dtype=jnp.float32)

    def step_size(step: Any) -> Any:  # NumPyro passes the optimizer's step count
        return table[jnp.minimum(step // steps_per_epoch, epochs - 1)]

    step = lr if lr_schedule == "constant" else step_size
    optimizer = (
        CoupledDecayAdam(step, b1=betas[0], b2=betas[1], weight_decay=weight_decay)
        if weight_decay
        else Adam(step, b1=betas[0], b2=betas[1])
    )
    return optimizer, lambda epoch: rates[min(epoch, epochs - 1)]


class CoupledDecayAdam(Adam):
    """``numpyro.optim.Adam`` with torch's coupled L2 penalty: ``weight_decay * param`` is added
    to each gradient before the Adam step."""

    def __init__(self, *args: Any, weight_decay: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.weight_decay = weight_decay

    def update(self, g: Any, state: Any, value: Any = None) -> Any:
        """Adam's update on ``g + weight_decay * params``."""
        params = self.get_params(state)
        decayed = jax.tree_util.tree_map(lambda grad, p: grad + self.weight_decay * p, g, params)
        return super().update(decayed, state, value)


def run_svi(
    svi: Any,
    arrays: tuple[Any, ...],
    *,
    num_data: int,
    epochs: int,
    batch_size: int,
    init_key: Any,
    key: Any,
    seed: int,
    val: tuple[Any, ...] | None = None,
    transform: Callable[[Any, tuple[Any, ...]], tuple[Any, ...]] | None = None,
    progress: bool = False,
    desc: str = "numpyro",
    early_stopping: int | None = None,
    lr_of_epoch: Callable[[int], float] | None = None,
) -> SVIRun:
    """Train ``svi`` (a ``numpyro.infer.SVI`` whose model and guide take ``(*batch, num_data)``)
    on ``arrays`` (each ``(N, ...)``, rows aligned) for ``epochs``.

    ``transform(step_key, batch)`` maps each minibatch before the step (e.g. dynamic
    binarization); ``val`` (arrays like ``arrays``) gets a one-sample ELBO per epoch. With
    ``early_stopping`` (a patience in epochs) training stops once ``val_elbo`` (``train_elbo``
    without ``val``) has not improved for that many epochs, and the state of the best epoch is
    returned (there are no checkpoint files to load it from). The minibatch order comes from
    ``numpy.random.default_rng(seed)``; ``init_key`` seeds ``svi.init`` and ``key`` the
    per-step keys. ``lr_of_epoch`` (from :func:`adam`) puts the epoch's learning rate in its
    history row as ``lr``. Returns an :class:`SVIRun`; a NaN or infinite loss raises
    ``FloatingPointError`` naming the epoch.
    """
    from tqdm.auto import tqdm

    num_batches = batches_per_epoch(num_data, batch_size)
    batch_size = min(batch_size, num_data)
    # compiled as one program: NumPyro's eager init would compile each primitive on its own
    init = jax.jit(lambda init_key, *batch: svi.init(init_key, *batch, num_data))
    state = init(init_key, *(a[:batch_size] for a in arrays))

    def epoch_fn(state: Any, order: Any, keys: Any) -> Any:
        def step(carry: Any, inputs: Any) -> Any:
            index, step_key = inputs
            batch = tuple(a[index] for a in arrays)
            if transform is not None:
                batch = transform(step_key, batch)
            return svi.update(carry, *batch, num_data)

        return jax.lax.scan(step, state, (order.reshape(num_batches, batch_size), keys))

    epoch_fn = jax.jit(epoch_fn)
    val_loss = None
    if val is not None:
        num_val = len(val[0])
        val_loss = jax.jit(lambda state, val_key: svi.evaluate(state, *val, num_val))
    rng = np.random.default_rng(seed)
    history: list[dict[str, float]] = []
    monitor = "train_elbo" if val is None else "val_elbo"
    best_value, best_state, best_epoch, epochs_without_gain = -np.inf, state, None, 0
    stop_reason = None
    bar = tqdm(range(epochs), disable=not progress, desc=desc)
    for epoch in bar:
        started = time.perf_counter()
        order = jax.numpy.asarray(rng.permutation(num_data)[: num_batches * batch_size])
        key, epoch_key = jax.random.split(key)
        state, losses = epoch_fn(state, order, jax.random.split(epoch_key, num_batches))
        loss = float(losses.mean())  # the one host sync of the epoch
        seconds = time.perf_counter() - started
        if not np.isfinite(loss):
            raise FloatingPointError(f"the loss became {loss} in epoch {epoch + 1}.")
        row = {
            "epoch": epoch + 1,
            "train_elbo": -loss / num_data,
            "seconds": seconds,
            "samples_per_s": num_batches * batch_size / seconds,
        }
        if val_loss is not None:
            row["val_elbo"] = -float(val_loss(state, epoch_key)) / num_val
        if lr_of_epoch is not None:
            row["lr"] = lr_of_epoch(epoch)
        history.append(row)
        bar.set_postfix(elbo=f"{row['train_elbo']:.1f}")
        if row[monitor] > best_value:
            best_value, best_state, best_epoch, epochs_without_gain = (
                row[monitor],
                state,
                epoch + 1,
                0,
            )
        else:
            epochs_without_gain += 1
        if early_stopping is not None and epochs_without_gain >= early_stopping:
            if epoch + 1 < epochs:
                stop_reason = (
                    f"early stopping: {monitor} did not improve for {early_stopping} epochs "
                    f"(best {best_value:.4f} in epoch {best_epoch}, whose weights are kept)"
                )
                break
    final = state if early_stopping is None else best_state
    return SVIRun(final, jax.jit(svi.get_params)(final), history, best_epoch, stop_reason)


def train(
    model: Callable[..., Any],
    guide: Callable[..., Any],
    objective: Any,
    arrays: tuple[Any, ...],
    settings: SVISettings,
    *,
    init_key: Any,
    key: Any,
    val: tuple[Any, ...] | None = None,
    transform: Callable[[Any, tuple[Any, ...]], tuple[Any, ...]] | None = None,
    desc: str = "numpyro",
) -> SVIRun:
    """Fit ``model``/``guide`` (NumPyro programs taking ``(*batch, num_data)``) on ``arrays``
    (each ``(N, ...)``) with ``objective`` (a NumPyro ELBO) and Adam as ``settings`` say: builds
    the optimizer (:func:`adam`) and the ``SVI``, then runs :func:`run_svi`. ``init_key`` and
    ``key`` are the SVI's keys; ``val``, ``transform`` and ``desc`` as in :func:`run_svi`."""
    from numpyro.infer import SVI

    num_data = int(arrays[0].shape[0])
    optimizer, lr_of_epoch = adam(
        settings.lr,
        settings.betas,
        epochs=settings.epochs,
        steps_per_epoch=batches_per_epoch(num_data, settings.batch_size),
        lr_schedule=settings.lr_schedule,
        lr_decay=settings.lr_decay,
        weight_decay=settings.weight_decay,
    )
    return run_svi(
        SVI(model, guide, optimizer, objective),
        arrays,
        num_data=num_data,
        epochs=settings.epochs,
        batch_size=settings.batch_size,
        init_key=init_key,
        key=key,
        seed=settings.seed,
        val=val,
        transform=transform,
        progress=settings.progress,
        desc=desc,
        early_stopping=settings.early_stopping,
        lr_of_epoch=lr_of_epoch,
    )
