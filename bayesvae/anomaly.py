"""Anomaly detection end to end: read a table, fit an :class:`~bayesvae.models.AnomalyMixture`,
score every row, and (with labels) measure AUCROC and AUCPR; write a run folder.

>>> import numpy as np, bayesvae
>>> X = np.random.default_rng(0).normal(size=(200, 2))
>>> run = bayesvae.detect_anomalies(X, epochs=50)
>>> run.scores.columns.tolist()
['row', 'p_anomaly', 'score', 'flag']
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy.special import expit

from bayesvae.data.tabular import check_binary_labels, read_features
from bayesvae.models.anomaly import AnomalyMixture, check_features

__all__ = ["detect_anomalies", "AnomalyRun", "ranking_metrics", "MAX_SAVED_LOG_LIKELIHOOD"]

#: ``posterior.nc`` keeps the pointwise log-likelihood (draws x rows) only below this many values.
MAX_SAVED_LOG_LIKELIHOOD = 5_000_000


def ranking_metrics(labels: Any, anomaly_score: Any) -> dict[str, float]:
    """AUCROC and AUCPR (average precision) of ``anomaly_score`` (higher = more anomalous)
    against 0/1 ``labels`` (1 = anomaly); both ``(N,)``."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    labels = np.asarray(labels)
    if len(np.unique(labels)) < 2:
        raise ValueError("labels hold only one class; AUCROC and AUCPR need both.")
    return {
        "aucroc": float(roc_auc_score(labels, anomaly_score)),
        "aucpr": float(average_precision_score(labels, anomaly_score)),
    }


@dataclass
class AnomalyRun:
    """What :func:`detect_anomalies` returns.

    Attributes:
        model: the fitted :class:`~bayesvae.models.AnomalyMixture`.
        features: the input features ``(N, D)`` in original units; ``feature_names`` their names.
        scores: one row per input row, in input order: ``row`` (index), ``p_anomaly``
            (posterior P(anomaly | x)), ``score`` (``score_samples``: higher = more normal) and
            ``flag`` (1 when P(anomaly | x) > threshold).
        labels: the 0/1 labels when given; ``metrics``: AUCROC/AUCPR (with labels), the number
            flagged, and the posterior mean and 90 % interval of the contamination.
    """

    model: AnomalyMixture
    features: np.ndarray
    feature_names: list[str]
    scores: Any
    labels: np.ndarray | None = None
    metrics: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary (no per-row data)."""
        return {
            "family": "AnomalyMixture",
            "rows": len(self.scores),
            "features": self.feature_names,
            "n_components": self.model.n_components,
            "covariance": self.model.covariance,
            "method": self.model.method,
            "threshold": self.model.threshold,
            **self.metrics,
        }

    def table(self) -> str:
        """A short plain-text summary."""
        m = self.metrics
        lines = [
            f"AnomalyMixture ({self.model.method}, K={self.model.n_components}, "
            f"{self.model.covariance} covariance) on {len(self.scores)} rows x "
            f"{len(self.feature_names)} features",
            f"contamination: posterior mean {m['contamination_mean']:.4f}, 90% interval "
            f"[{m['contamination_interval'][0]:.4f}, {m['contamination_interval'][1]:.4f}]",
            f"flagged: {m['flagged']} rows (P(anomaly | x) > {self.model.threshold:g})",
        ]
        if "aucroc" in m:
            lines.append(f"AUCROC {m['aucroc']:.4f}   AUCPR {m['aucpr']:.4f}")
        return "\n".join(lines)

    def save(self, out: str | Path) -> Path:
        """Write a run folder: the model (config.yaml, model.pt, metrics.csv for SVI),
        ``scores.csv``, ``result.json``, ``scores.png``, ``projection.png`` and, for MCMC,
        ``posterior.nc`` (its pointwise log-likelihood only when it has at most
        :data:`MAX_SAVED_LOG_LIKELIHOOD` values). Every file is written atomically."""
        from bayesvae.infer.checkpoint import atomic_path, save_model, write_text
        from bayesvae.report import plots

        model, result = self.model, self.model.result_
        history = getattr(result, "history", None)
        fit_config = dict(getattr(result, "settings", {}) or {})
        fit_config.setdefault("method", model.method)
        fit_config.setdefault("seed", model.seed)
        folder = save_model(model, out, history=history, fit_config=fit_config)
        write_text(folder / "scores.csv", self.scores.to_csv(index=False))
        write_text(folder / "result.json", json.dumps(self.to_dict(), indent=2))
        plots.anomaly_scores(
            self.scores["p_anomaly"],
            folder / "scores.png",
            labels=self.labels,
            threshold=model.threshold,
        )
        plots.anomaly_projection(
            model.standardize(self.features).cpu().numpy(),
            self.scores["flag"].to_numpy(),
            folder / "projection.png",
            labels=self.labels,
        )
        if model.method == "mcmc":
            idata = model.to_inference_data()
            if "log_likelihood" in idata.groups():
                pointwise = idata.log_likelihood["obs"]
                if pointwise.size > MAX_SAVED_LOG_LIKELIHOOD:  # e.g. 11k rows x 2000 draws
                    import arviz as az

                    idata = az.InferenceData(
                        **{g: idata[g] for g in idata.groups() if g != "log_likelihood"}
                    )
            with atomic_path(folder / "posterior.nc") as tmp:
                idata.to_netcdf(str(tmp))
        return folder


def detect_anomalies(
    source: Any,
    *,
    columns: Any = None,
    label_column: str | int | None = None,
    labels: Any = None,
    progress: bool = False,
    **model_options: Any,
) -> AnomalyRun:
    """Fit an :class:`~bayesvae.models.AnomalyMixture` to ``source`` and score every row.

    Args:
        source: an array ``(N, D)``, a DataFrame, or a path to a ``.csv``, ``.npy`` or ``.npz``
            (see :func:`bayesvae.data.read_features` for ``columns`` and ``label_column``).
        labels: 0/1 labels ``(N,)`` for an array ``source`` (1 = anomaly); used only to report
            AUCROC/AUCPR, never for fitting.
        model_options: :class:`~bayesvae.models.AnomalyMixture` arguments (``n_components``,
            ``contamination``, ``method``, ...), validated before any work.
    """
    import pandas as pd

    model = AnomalyMixture(**model_options)  # bad options fail here, before reading data
    if isinstance(source, (str, os.PathLike)) or hasattr(source, "columns"):
        if labels is not None:
            raise ValueError(
                "labels= is for array input; name a label_column for files and tables."
            )
        X, y, names = read_features(source, columns=columns, label_column=label_column)
    else:
        X = check_features("X", source)
        names = [f"x{i}" for i in range(X.shape[1])]
        y = None if labels is None else check_binary_labels(labels, len(X))
    model.fit(X, progress=progress)
    score = model.score_samples(X)  # log P(normal | x) - log P(anomaly | x)
    p_anomaly = expit(-score)  # the same posterior pass gives P(anomaly | x)
    scores = pd.DataFrame(
        {
            "row": np.arange(len(X)),
            "p_anomaly": p_anomaly,
            "score": score,
            "flag": (p_anomaly > model.threshold).astype(int),
        }
    )
    low, high = model.contamination_interval(0.9)
    metrics: dict[str, Any] = {
        "flagged": int(scores["flag"].sum()),
        "contamination_mean": model.contamination_,
        "contamination_interval": [low, high],
    }
    if y is not None:
        metrics.update(ranking_metrics(y, -score))
    return AnomalyRun(model, X, names, scores, y, metrics)
