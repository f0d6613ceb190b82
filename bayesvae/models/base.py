"""What every model family shares: a registry (so ``bayesvae.load`` can rebuild a saved model from
its config), the recorded constructor config, a per-instance Pyro name, and the device."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator
from typing import Any, ClassVar

import pyro
import torch

from bayesvae.models.contract import ModelContract

__all__ = ["PyroModel", "MODEL_REGISTRY", "get_model_class", "seeded_init"]

MODEL_REGISTRY: dict[str, type[PyroModel]] = {}
_instance_counter = itertools.count()


def get_model_class(name: str) -> type[PyroModel]:
    """The registered model class called ``name`` (as written in a run folder's config.yaml).
    The built-in families register when their modules are first imported: they are loaded
    here before a name is declared unknown."""
    if name not in MODEL_REGISTRY:
        from bayesvae.models import load_families

        load_families()
    if name not in MODEL_REGISTRY:
        known = ", ".join(sorted(MODEL_REGISTRY)) or "none"
        raise ValueError(f"unknown model family {name!r}; registered families: {known}.")
    return MODEL_REGISTRY[name]


@contextlib.contextmanager
def seeded_init(seed: int | None) -> Iterator[None]:
    """Initialise parameters from ``seed`` without touching the global RNG (no-op for ``None``)."""
    if seed is None:
        yield
        return
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


class PyroModel(ModelContract, torch.nn.Module):
    """Base class of bayesvae's model families (the optional hooks and their defaults are
    declared once, in :class:`~bayesvae.models.contract.ModelContract`).

    A subclass defines ``model(*data, num_data=None)`` and ``guide(*data, num_data=None)`` with the
    same arguments: plain Pyro callables that anyone can hand to ``pyro.infer.SVI``. It records the
    keyword arguments needed to rebuild it in ``self.config`` and may define
    ``check_data(*data)`` to validate training data before any training starts.

    Each instance registers its networks in Pyro's param store under its own ``pyro_name``, so two
    models never share (and silently overwrite) each other's parameters.
    """

    family: ClassVar[str | None]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # bayesvae's own families are saved by class name; a user's subclass by its qualified
        # name, so a user class called "VAE" never replaces the built-in one on load
        own = cls.__module__.startswith("bayesvae.")
        cls.family = cls.__name__ if own else f"{cls.__module__}.{cls.__qualname__}"
        MODEL_REGISTRY[cls.family] = cls

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        self.config = dict(config)
        self.pyro_name = f"{type(self).__name__.lower()}{next(_instance_counter)}"

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> PyroModel:
        """Rebuild an (untrained) model from ``config``."""
        return cls(**config)

    @property
    def device(self) -> torch.device:
        """Device of the model's parameters (CPU for a model without any)."""
        for tensor in itertools.chain(self.parameters(), self.buffers()):
            return tensor.device
        return torch.device("cpu")

    @staticmethod
    def data_plate(batch: torch.Tensor, num_data: int | None, name: str = "data") -> pyro.plate:
        """``pyro.plate(name)`` over a minibatch ``batch: (B, ...)`` of a data set of
        ``num_data`` rows (default ``B``): log densities inside are scaled by ``num_data / B``.

        The minibatch is already chosen by the data loader, so the plate is given its rows as the
        subsample instead of drawing a fresh ``randperm(num_data)`` every step.
        """
        size = batch.shape[0]
        return pyro.plate(
            name, size=num_data or size, subsample=torch.arange(size, device=batch.device)
        )

    def extra_repr(self) -> str:
        return ", ".join(f"{key}={value!r}" for key, value in self.config.items())
