"""Model comparison from the ``log_likelihood`` group: PSIS-LOO, WAIC, and ``compare``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["loo", "waic", "compare"]


def _inference_data(fit: Any) -> Any:
    return fit.to_inference_data() if hasattr(fit, "to_inference_data") else fit


def loo(fit: Any, **kwargs: Any) -> Any:
    """PSIS-LOO (``arviz.loo``) of a fit or ``InferenceData`` with pointwise log-likelihoods."""
    import arviz as az

    return az.loo(_inference_data(fit), pointwise=True, **kwargs)


def waic(fit: Any, **kwargs: Any) -> Any:
    """WAIC (``arviz.waic``)."""
    import arviz as az

    return az.waic(_inference_data(fit), pointwise=True, **kwargs)


def compare(fits: Mapping[str, Any], *, ic: str = "loo") -> Any:
    """Rank fits by expected log predictive density (``arviz.compare``); a DataFrame."""
    import arviz as az

    return az.compare({name: _inference_data(fit) for name, fit in fits.items()}, ic=ic)
