"""Callbacks for :func:`bayesvae.fit`: hooks called by the loop with the live :class:`FitState`.

What the loop itself does not decide is a callback: early stopping, iterate averaging, KL
warm-up (:class:`KLWarmup`, from ``fit(kl_warmup=)``) and checkpoints (:class:`Checkpointer`,
from ``fit(checkpoint_dir=)``); ``fit`` runs yours first, then these, the checkpointer last.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

__all__ = [
    "FitState",
    "Callback",
    "EarlyStopping",
    "IterateAveraging",
    "KLWarmup",
    "Checkpointer",
    "TensorBoardLogger",
    "MLflowLogger",
]


@dataclass
class FitState:
    """What a callback sees: the model, the optimizer, the rows of history so far, and ``stop``
    (set it to ``True`` to end training after this epoch)."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    epoch: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    stop: bool = False
    stop_reason: str | None = None
    #: SVI steps taken so far (all rows, resumed ones included)
    step: int = 0
    #: the best monitored value so far and its row (``best_epoch == epoch``: this row improved)
    best_value: float = -math.inf
    best_epoch: int | None = None


class Callback:
    """Base class: override any hook. Hooks return nothing; set ``state.stop`` to stop."""

    def on_fit_start(self, state: FitState) -> None:
        """Before the first epoch (after a resume, before the first remaining epoch)."""

    def on_epoch_end(self, state: FitState) -> None:
        """After each epoch's evaluation; ``state.history[-1]`` is this epoch's row."""

    def on_fit_end(self, state: FitState) -> None:
        """After the last epoch, or after a stop."""

    def state_dict(self) -> dict[str, Any]:
        """State to save in checkpoints (so a resumed run continues the same way)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""


class EarlyStopping(Callback):
    """Stop when ``monitor`` (higher is better, e.g. ``"val_elbo"``) has not improved by more than
    ``min_delta`` for ``patience`` epochs."""

    def __init__(
        self, patience: int = 10, *, monitor: str = "val_elbo", min_delta: float = 0.0
    ) -> None:
        if isinstance(patience, bool) or not isinstance(patience, int) or patience <= 0:
            raise ValueError(f"patience must be a positive integer, got {patience!r}.")
        self.patience = patience
        self.monitor = monitor
        self.min_delta = float(min_delta)
        self.best = -math.inf
        self.bad_epochs = 0

    def on_epoch_end(self, state: FitState) -> None:
        row = state.history[-1]
        if self.monitor not in row:
            raise ValueError(
                f"EarlyStopping monitors {self.monitor!r}, which the history does not have "
                f"(columns: {sorted(row)}); pass val= to fit or monitor='train_elbo'."
            )
        value = row[self.monitor]
        if value > self.best + self.min_delta:
            self.best, self.bad_epochs = value, 0
        else:
            self.bad_epochs += 1
            if self.bad_epochs >= self.patience:
                state.stop = True
                state.stop_reason = (
                    f"early stopping: {self.monitor} did not improve for "
                    f"{self.patience} epochs (best {self.best:.4f})"
                )

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "bad_epochs": self.bad_epochs}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.bad_epochs = state["best"], state["bad_epochs"]


class IterateAveraging(Callback):
    """Polyak-Ruppert averaging: from epoch ``start`` on, keep the running mean of every
    optimised (unconstrained) parameter after each epoch, and load the means when fitting ends.

    The average of the late iterates has far less noise than the last iterate of a stochastic
    optimiser, which matters when a posterior summary must be precise.
    """

    def __init__(self, start: int) -> None:
        if isinstance(start, bool) or not isinstance(start, int) or start <= 0:
            raise ValueError(f"start must be a positive integer (an epoch), got {start!r}.")
        self.start = start
        self.count = 0
        self.means: list[torch.Tensor] = []

    def _params(self, state: FitState) -> list[torch.Tensor]:
        return [p for group in state.optimizer.param_groups for p in group["params"]]

    def on_epoch_end(self, state: FitState) -> None:
        if state.epoch < self.start:
            return
        params = self._params(state)
        if not self.means:
            self.means = [p.detach().clone() for p in params]
            self.count = 1
            return
        self.count += 1
        with torch.no_grad():
            for mean, param in zip(self.means, params, strict=True):
                mean.add_(param.detach() - mean, alpha=1.0 / self.count)

    def on_fit_end(self, state: FitState) -> None:
        if not self.means:
            return
        with torch.no_grad():
            for mean, param in zip(self.means, self._params(state), strict=True):
                param.copy_(mean)

    def state_dict(self) -> dict[str, Any]:
        return {"count": self.count, "means": [m.clone() for m in self.means]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.count, self.means = state["count"], list(state["means"])


class KLWarmup(Callback):
    """KL warm-up (deterministic annealing): the latent sites' log-densities are weighted from
    ``1/steps`` up to 1 over the first ``steps`` SVI steps, read at every step from the loop's
    step count (so a resumed fit continues the ramp). ``fit(kl_warmup=E)`` adds one over ``E``
    epochs; :meth:`wrap` puts the weight on a model or guide
    (:func:`bayesvae.infer.objectives.scale_latents`)."""

    def __init__(self, steps: int) -> None:
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
            raise ValueError(f"steps must be a non-negative integer, got {steps!r}.")
        self.steps = steps
        self.state: FitState | None = None

    def weight(self, step: int) -> float:
        """The weight at (0-based) step ``step``: ``min(1, (step + 1) / steps)``."""
        return 1.0 if self.steps == 0 else min(1.0, (step + 1) / self.steps)

    def wrap(self, fn: Callable[..., Any], state: FitState) -> Callable[..., Any]:
        """``fn`` with its latent sites scaled by the current weight (``state.step``)."""
        from bayesvae.infer.objectives import scale_latents

        return scale_latents(fn, lambda: self.weight(state.step))


class Checkpointer(Callback):
    """Write ``last.pt`` every ``every`` rows (and at the last row, or when the fit stops) and
    ``best.pt`` whenever the row improved the monitored value, into ``folder``, atomically.

    ``payload()`` builds the checkpoint (model, optimizer, history, RNG and callback states);
    ``check()`` runs first and raises when the parameters are not finite, so a diverged state
    is never written. ``fit(checkpoint_dir=, checkpoint_every=)`` adds one, after every other
    callback (so an early stop is seen and checkpointed)."""

    def __init__(
        self,
        folder: str | Path,
        *,
        every: int,
        last_row: int,
        payload: Callable[[], dict[str, Any]],
        check: Callable[[], None] = lambda: None,
        last_name: str = "last.pt",
        best_name: str = "best.pt",
    ) -> None:
        self.folder, self.every, self.last_row = Path(folder), every, last_row
        self.payload, self.check = payload, check
        self.last_name, self.best_name = last_name, best_name

    def on_epoch_end(self, state: FitState) -> None:
        from bayesvae.infer.checkpoint import save_checkpoint

        due = state.epoch % self.every == 0 or state.epoch == self.last_row or state.stop
        improved = state.best_epoch == state.epoch
        if not (due or improved):
            return
        self.check()
        payload = self.payload()
        if due:
            save_checkpoint(self.folder / self.last_name, payload)
        if improved:
            save_checkpoint(self.folder / self.best_name, payload)


class TensorBoardLogger(Callback):
    """Write every history row's numbers to TensorBoard (``torch.utils.tensorboard``; needs the
    ``tensorboard`` package, which bayesvae does not require), one scalar per column, at the
    row's SVI step. ``fit(..., callbacks=[TensorBoardLogger("runs/tb")])``."""

    def __init__(self, log_dir: str | Path, *, prefix: str = "fit") -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as err:  # tensorboard is optional
            raise ImportError(
                "TensorBoardLogger needs the tensorboard package: pip install tensorboard"
            ) from err
        self.writer = SummaryWriter(log_dir=str(log_dir))
        self.prefix = prefix

    def on_epoch_end(self, state: FitState) -> None:
        for key, value in state.history[-1].items():
            if key not in ("epoch", "step") and isinstance(value, (int, float)):
                self.writer.add_scalar(f"{self.prefix}/{key}", value, global_step=state.step)

    def on_fit_end(self, state: FitState) -> None:
        self.writer.flush()


class MLflowLogger(Callback):
    """Log every history row's numbers to the active MLflow run (``mlflow.log_metrics``; needs
    the ``mlflow`` package, which bayesvae does not require), at the row's SVI step."""

    def __init__(self) -> None:
        try:
            import mlflow
        except ImportError as err:  # mlflow is optional
            raise ImportError("MLflowLogger needs the mlflow package: pip install mlflow") from err
        self.mlflow = mlflow

    def on_epoch_end(self, state: FitState) -> None:
        row = state.history[-1]
        metrics = {
            key: float(value)
            for key, value in row.items()
            if key not in ("epoch", "step")
            and isinstance(value, (int, float))
            and math.isfinite(value)
        }
        self.mlflow.log_metrics(metrics, step=state.step)
