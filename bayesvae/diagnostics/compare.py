"""Model comparison from the ``log_likelihood`` group (PSIS-LOO, WAIC, ``compare``), and a guide
against NUTS on the same model (:func:`compare_posteriors`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["loo", "waic", "compare", "compare_posteriors", "GUIDE_MEAN_TOLERANCE"]

#: a guide's mean counts as matching NUTS within this many NUTS posterior sds
GUIDE_MEAN_TOLERANCE = 0.25


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


def _scalar_draws(idata: Any, var_names: list[str] | None) -> dict[str, Any]:
    """Parameter -> flat draws ``(chains * draws,)``, one entry per scalar element
    (``beta[0]``, ``beta[1]``, ...)."""
    posterior = idata.posterior
    names = var_names or list(posterior.data_vars)
    out = {}
    for name in names:
        values = posterior[name].to_numpy()
        flat = values.reshape(values.shape[0] * values.shape[1], -1)
        if flat.shape[1] == 1 and values.ndim == 2:
            out[name] = flat[:, 0]
            continue
        import numpy as np

        for index in np.ndindex(*values.shape[2:]):
            label = f"{name}[{','.join(str(i) for i in index)}]"
            out[label] = values[(slice(None), slice(None), *index)].reshape(-1)
    return out


def compare_posteriors(
    approximate: Any, reference: Any, *, var_names: list[str] | None = None
) -> Any:
    """A guide (or any approximation) against a reference posterior (NUTS), per scalar parameter.

    Args:
        approximate, reference: fits with ``to_inference_data()`` or ``InferenceData``; e.g. an
            SVI ``FitResult``'s and an ``MCMCResult``'s.
        var_names: the variables to compare (default: those in both posteriors).

    Returns:
        A DataFrame, one row per scalar parameter: ``mean``/``sd`` of each, ``mean_diff_sd``
        (the mean difference in reference sds), ``sd_ratio`` (approximate / reference) and
        ``agrees`` (``|mean_diff_sd| <= GUIDE_MEAN_TOLERANCE`` and ``sd_ratio`` in [0.5, 2]).
    """
    import numpy as np
    import pandas as pd

    approx, ref = _inference_data(approximate), _inference_data(reference)
    shared = [n for n in ref.posterior.data_vars if n in approx.posterior.data_vars]
    names = var_names if var_names is not None else shared
    missing = [n for n in names if n not in shared]
    if missing:
        raise ValueError(f"variables {missing} are not in both posteriors; shared: {shared}.")
    approx_draws, ref_draws = _scalar_draws(approx, names), _scalar_draws(ref, names)
    rows = []
    for label, draws in ref_draws.items():
        a, r = approx_draws[label], draws
        ref_sd = float(np.std(r, ddof=1)) if r.size > 1 else float("nan")
        approx_sd = float(np.std(a, ddof=1)) if a.size > 1 else float("nan")
        diff = (float(np.mean(a)) - float(np.mean(r))) / ref_sd if ref_sd > 0 else float("nan")
        ratio = approx_sd / ref_sd if ref_sd > 0 else float("nan")
        rows.append(
            {
                "parameter": label,
                "mean": float(np.mean(a)),
                "sd": approx_sd,
                "reference_mean": float(np.mean(r)),
                "reference_sd": ref_sd,
                "mean_diff_sd": diff,
                "sd_ratio": ratio,
                "agrees": bool(abs(diff) <= GUIDE_MEAN_TOLERANCE and 0.5 <= ratio <= 2.0),
            }
        )
    return pd.DataFrame(rows)
