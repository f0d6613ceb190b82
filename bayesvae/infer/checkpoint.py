"""Training checkpoints: ``last.pt`` (and ``best.pt``) in a fit's ``checkpoint_dir``, written
atomically and read with ``weights_only=True`` (run folders themselves live in
:mod:`bayesvae.runs`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from bayesvae.runs.files import TEMP_SUFFIX, safe_torch_load, write_torch

__all__ = ["save_checkpoint", "load_checkpoint", "remove_stale_temps", "CheckpointWriteError"]


class CheckpointWriteError(OSError):
    """A checkpoint could not be written (a full disk, a folder gone read-only); training
    stopped and the previous checkpoint file is as it was."""


def remove_stale_temps(folder: str | os.PathLike[str]) -> None:
    """Remove temporary files a killed checkpoint write left in ``folder``."""
    folder = Path(folder)
    if folder.is_dir():
        for leftover in folder.glob(f".*{TEMP_SUFFIX}"):
            leftover.unlink(missing_ok=True)


def save_checkpoint(path: str | os.PathLike[str], checkpoint: dict[str, Any]) -> Path:
    """Write a training checkpoint (a dict of tensors, states and plain values) atomically;
    :class:`CheckpointWriteError` when it cannot be written (the earlier file stays)."""
    path = Path(path)
    try:
        return write_torch(path, checkpoint)
    except OSError as err:
        kept = "the previous one is kept" if path.exists() else "there is no earlier one"
        raise CheckpointWriteError(
            f"could not write the checkpoint {path} ({err.strerror or err}); training stopped "
            f"and {kept}."
        ) from err


def load_checkpoint(
    path: str | os.PathLike[str], *, device: str | torch.device = "cpu"
) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` (``weights_only=True``: a file that
    holds anything but tensors and plain values raises
    :class:`~bayesvae.runs.UnsafeFileError`)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path} to resume from.")
    return safe_torch_load(path, device=device)
