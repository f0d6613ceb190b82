"""Callbacks for :func:`bayesvae.fit`: hooks called by the loop with the live :class:`FitState`."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch

__all__ = ["FitState", "Callback", "EarlyStopping", "IterateAveraging"]


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
