"""Objectives by name, and the handler that weights latent sites (KL warm-up)."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator
from typing import Any

from pyro.infer import ELBO, JitTrace_ELBO, Trace_ELBO, TraceEnum_ELBO, TraceMeanField_ELBO
from pyro.poutine.messenger import Messenger

from bayesvae.data.validation import check_choice, check_positive_int

__all__ = [
    "OBJECTIVES",
    "make_elbo",
    "scale_latents",
    "LatentScaleMessenger",
    "quiet_jit_deprecation",
]

#: Objective names accepted by ``bayesvae.fit(..., elbo=NAME)``.
OBJECTIVES: dict[str, type[ELBO]] = {
    "trace": Trace_ELBO,
    "meanfield": TraceMeanField_ELBO,
    "jit": JitTrace_ELBO,
    "enum": TraceEnum_ELBO,
}


def make_elbo(
    name: str,
    *,
    num_particles: int = 1,
    vectorize_particles: bool = True,
    max_plate_nesting: int | None = None,
    **options: Any,
) -> ELBO:
    """Build a Pyro ELBO from its name (see :data:`OBJECTIVES`).

    ``num_particles > 1`` draws several samples per step, vectorized over a new leftmost batch
    dimension when ``vectorize_particles`` (the model must then have static structure).
    """
    check_choice("elbo", name, tuple(OBJECTIVES))
    num_particles = check_positive_int("num_particles", num_particles)
    kwargs: dict[str, Any] = dict(
        num_particles=num_particles, vectorize_particles=vectorize_particles and num_particles > 1
    )
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
