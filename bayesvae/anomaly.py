"""Anomaly detection end to end: read a table, fit an :class:`AnomalyMixture`,
score every row, and (with labels) measure AUCROC and AUCPR; write a run folder. And
:class:`VAEAnomalyDetector`, which scores points by a VAE's negative ELBO or importance-weighted
``-log p(x)``.

>>> import numpy as np, bayesvae
>>> X = np.random.default_rng(0).normal(size=(200, 2))
>>> run = bayesvae.detect_anomalies(X, epochs=50)
>>> run.scores.columns.tolist()
['row', 'p_anomaly', 'score', 'flag']
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyro
import torch
from scipy.special import expit
from sklearn.base import BaseEstimator, OutlierMixin

from bayesvae.data.tabular import check_binary_labels, read_features
from bayesvae.data.validation import check_choice
from bayesvae.infer.mcmc import mcmc
from bayesvae.infer.svi import fit as svi_fit
from bayesvae.models.anomaly import SITES, AnomalyMixtureModel, check_features
from bayesvae.runs import RunWriter

__all__ = [
    "AnomalyMixture",
    "detect_anomalies",
    "AnomalyRun",
    "ranking_metrics",
    "VAEAnomalyDetector",
    "MAX_SAVED_LOG_LIKELIHOOD",
]

#: ``posterior.nc`` keeps the pointwise log-likelihood (draws x rows) only below this many values.
MAX_SAVED_LOG_LIKELIHOOD = 5_000_000
#: ``covariance="auto"`` is full (LKJ correlations) up to this many features, diagonal above:
#: a full covariance has D(D - 1)/2 correlations per component to learn from contaminated data
FULL_COVARIANCE_MAX_FEATURES = 15
#: ``n_components="auto"`` holds this share of the rows out to compare K = 1..max_components
SELECTION_HELDOUT = 0.2


class _PicklesItsModel:
    """Pickling for an estimator whose fitted family model is ``model_``: the model travels as
    its family, config and state (Pyro tags trained parameters with weak references, which
    ``pickle`` cannot store); ``result_`` (the fit loop's result, which holds the live model)
    is left out, so an unpickled estimator predicts as the original and has ``result_ = None``.
    """

    def __getstate__(self) -> dict[str, Any]:
        from bayesvae.runs import model_to_dict

        state = dict(super().__getstate__())  # type: ignore[misc]  # a copy, never __dict__
        if "model_" in state:
            state["model_"] = model_to_dict(state["model_"])
        if "result_" in state:
            state["result_"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        from bayesvae.runs import model_from_dict

        if "model_" in state:
            state = {**state, "model_": model_from_dict(state["model_"])}
        super().__setstate__(state)  # type: ignore[misc]


class AnomalyMixture(_PicklesItsModel, OutlierMixin, BaseEstimator):
    """A Gaussian mixture for normal data plus a broad anomaly component, as a scikit-learn
    outlier detector: ``fit(X)`` by SVI (``bayesvae.fit``, enumerated assignments) or NUTS
    (``bayesvae.mcmc`` on the NumPyro twin), then ``predict``, ``predict_proba``,
    ``anomaly_proba``, ``decision_function``, ``score_samples``. It passes scikit-learn's
    ``check_estimator`` (clone, pipelines, pickling, ``NotFittedError``, input validation).

    The Pyro model, guide and queries are
    :class:`~bayesvae.models.anomaly.AnomalyMixtureModel`'s (its arguments are this class's;
    see there); after ``fit`` it is ``model_``, to save, load or run your own SVI loop on.

    Its shape can come from the data: ``covariance="auto"`` (the default) is ``"full"`` up to
    :data:`FULL_COVARIANCE_MAX_FEATURES` features and ``"diag"`` above; ``n_components="auto"``
    fits K = 1 .. ``max_components`` on 80 % of the rows, keeps the smallest K whose held-out
    log predictive density per row is within one standard error of the best (the one-standard-
    error rule), and refits it on every row. Both stay settable; ``shape_`` says what was chosen
    and why.

    Attributes (after :meth:`fit`): ``model_`` the fitted model; ``result_`` the
    :class:`~bayesvae.infer.FitResult` or :class:`~bayesvae.infer.mcmc.MCMCResult`;
    ``n_features_in_`` (and ``feature_names_in_`` for a DataFrame); ``offset_``;
    ``contamination_`` the posterior mean anomaly rate; ``n_components_`` and ``covariance_``
    the shape fitted; ``shape_`` how it was chosen (a dict with ``reason`` and, for
    ``n_components="auto"``, the ``selection`` table).
    """

    def __init__(
        self,
        n_components: int | str = 1,
        *,
        covariance: str = "auto",
        max_components: int = 5,
        contamination: float = 0.05,
        contamination_strength: float = 20.0,
        anomaly_scale: float | str = "auto",
        reg_covar: float = 1e-3,
        lkj_concentration: float = 2.0,
        method: str = "svi",
        backend: str = "auto",
        guide_type: str = "meanfield",
        epochs: int = 300,
        batch_size: int = 2048,
        lr: float = 0.02,
        num_warmup: int = 300,
        num_samples: int = 500,
        num_chains: int = 4,
        num_posterior_draws: int = 200,
        threshold: float = 0.5,
        seed: int = 0,
    ) -> None:
        self.n_components = n_components
        self.covariance = covariance
        self.max_components = max_components
        self.contamination = contamination
        self.contamination_strength = contamination_strength
        self.anomaly_scale = anomaly_scale
        self.reg_covar = reg_covar
        self.lkj_concentration = lkj_concentration
        self.method = method
        self.backend = backend
        self.guide_type = guide_type
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.num_warmup = num_warmup
        self.num_samples = num_samples
        self.num_chains = num_chains
        self.num_posterior_draws = num_posterior_draws
        self.threshold = threshold
        self.seed = seed

    def build_model(
        self, *, n_components: int | None = None, covariance: str | None = None
    ) -> AnomalyMixtureModel:
        """A new, unfitted :class:`AnomalyMixtureModel` with these settings (validated:
        ``ValueError``/``TypeError`` naming the first bad one). ``"auto"`` settings need the
        data: pass the resolved ``n_components``/``covariance`` (without them, a placeholder
        K = 1, diagonal model validates the other settings)."""
        self._check_shape_options()
        params = {k: v for k, v in self.get_params().items() if k != "max_components"}
        if params["n_components"] == "auto":
            params["n_components"] = 1
        if params["covariance"] == "auto":
            params["covariance"] = "diag"
        if n_components is not None:
            params["n_components"] = n_components
        if covariance is not None:
            params["covariance"] = covariance
        return AnomalyMixtureModel(**params)

    def _check_shape_options(self) -> None:
        if isinstance(self.n_components, str) and self.n_components != "auto":
            raise ValueError(
                f"n_components must be a positive integer or 'auto', got {self.n_components!r}."
            )
        check_choice("covariance", self.covariance, ("auto", "diag", "full"))
        limit = self.max_components
        if isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or limit < 1:
            raise ValueError(f"max_components must be a positive integer, got {limit!r}.")

    def fit(self, X: Any, y: Any = None, *, progress: bool = False) -> AnomalyMixture:
        """Fit to raw features ``X`` (N, D) by ``self.method``; ``y`` is ignored (unsupervised,
        accepted for scikit-learn pipelines). Returns ``self``."""
        self.build_model()  # bad settings fail before the data are read
        X = self._validate(X, reset=True)
        covariance, reason = self._choose_covariance(X.shape[1])
        shape: dict[str, Any] = {"covariance_reason": reason}
        if self.n_components == "auto":
            n_components, shape["selection"], shape["components_reason"] = self._choose_k(
                X, covariance, progress
            )
        else:
            n_components = int(self.n_components)
            shape["components_reason"] = f"n_components={n_components} was given."
        model, result = self._fit_model(X, n_components, covariance, progress)
        self.model_, self.result_ = model, result
        self.n_components_, self.covariance_ = n_components, covariance
        self.shape_ = {
            "n_components": n_components,
            "covariance": covariance,
            "reason": f"{shape['components_reason']} {reason}",
            **shape,
        }
        return self

    def _choose_covariance(self, num_features: int) -> tuple[str, str]:
        if self.covariance != "auto":
            return self.covariance, f"covariance={self.covariance!r} was given."
        if num_features == 1:
            return "diag", "One feature (covariance='auto'): no correlations to model."
        if num_features <= FULL_COVARIANCE_MAX_FEATURES:
            return "full", (
                f"Full covariance (covariance='auto': {num_features} features <= "
                f"{FULL_COVARIANCE_MAX_FEATURES})."
            )
        return "diag", (
            f"Diagonal covariance (covariance='auto': {num_features} features > "
            f"{FULL_COVARIANCE_MAX_FEATURES}, too many correlations to learn)."
        )

    def _choose_k(
        self, X: np.ndarray, covariance: str, progress: bool
    ) -> tuple[int, list[dict[str, Any]], str]:
        """K = 1..max_components compared by held-out log predictive density per row."""
        from scipy.special import logsumexp
        from sklearn.model_selection import train_test_split

        heldout_rows = max(1, int(round(SELECTION_HELDOUT * len(X))))
        candidates = [
            k for k in range(1, int(self.max_components) + 1) if k < len(X) - heldout_rows
        ]
        train, heldout = train_test_split(X, test_size=heldout_rows, random_state=self.seed)
        rows = []
        for k in candidates:
            model, _ = self._fit_model(train, k, covariance, progress)
            draws = model.log_likelihood(heldout)  # (S, N)
            density = logsumexp(draws, axis=0) - np.log(draws.shape[0])  # (N,)
            rows.append(
                {
                    "n_components": k,
                    "heldout_log_density": float(density.mean()),
                    "standard_error": float(density.std(ddof=1) / np.sqrt(len(density)))
                    if len(density) > 1
                    else 0.0,
                }
            )
        best = max(rows, key=lambda r: r["heldout_log_density"])
        bar = best["heldout_log_density"] - best["standard_error"]
        chosen = min(r["n_components"] for r in rows if r["heldout_log_density"] >= bar)
        for row in rows:
            row["chosen"] = row["n_components"] == chosen
        reason = (
            f"K={chosen} (n_components='auto': the smallest K within one standard error of the "
            f"best held-out log density per row, {len(heldout)} of {len(X)} rows held out, "
            f"K=1..{candidates[-1]} compared)."
        )
        return chosen, rows, reason

    def _fit_model(
        self, X: np.ndarray, n_components: int, covariance: str, progress: bool
    ) -> tuple[AnomalyMixtureModel, Any]:
        model = self.build_model(n_components=n_components, covariance=covariance)
        if model.method == "svi":
            result: Any = svi_fit(
                model,
                X,
                epochs=model.epochs,
                batch_size=model.batch_size,
                lr=model.lr,
                seed=model.seed,
                progress=progress,
                device="cpu",
                eval_size=0,  # epochs of one or a few steps: an evaluation would cost as much
                backend=model.svi_backend(len(X)),
            )
            draws = model.guide_draws()
            if model.guide_type == "meanfield":
                store = pyro.get_param_store()
                mean = store[f"{model.pyro_name}.contamination_mean"].detach()
                concentration = store[f"{model.pyro_name}.contamination_concentration"].detach()
                model.contamination_beta.copy_(
                    torch.stack([mean * concentration, (1 - mean) * concentration])
                )
        else:
            result = mcmc(
                model,
                X,
                num_warmup=model.num_warmup,
                num_samples=model.num_samples,
                num_chains=model.num_chains,
                seed=model.seed,
                progress=progress,
            )
            posterior = result.inference_data.posterior
            draws = {}
            for name in SITES:
                if name in posterior:
                    value = posterior[name].to_numpy()
                    flat = value.reshape((-1,) + value.shape[2:])
                    draws[name] = torch.as_tensor(np.array(flat))
        for name, value in draws.items():
            getattr(model, f"posterior_{name}").copy_(value)
        model.fitted.fill_(True)
        model.result_ = result
        return model, result

    def _validate(self, X: Any, *, reset: bool) -> np.ndarray:
        """scikit-learn's input checks (2-D, numeric, finite, not sparse; to fit, at least 2
        rows; to predict, the fitted number of features), as float64."""
        from sklearn.utils.validation import validate_data

        if isinstance(X, torch.Tensor):
            X = X.detach().cpu().numpy()
        return validate_data(
            self, X, reset=reset, dtype=np.float64, ensure_min_samples=2 if reset else 1
        )

    def _fitted_model(self, X: Any) -> tuple[AnomalyMixtureModel, np.ndarray]:
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(self)
        return self.model_, self._validate(X, reset=False)

    def predict_proba(self, X: Any) -> np.ndarray:
        """Posterior responsibilities ``(N, K + 1)``, the last column P(anomaly | x)."""
        model, X = self._fitted_model(X)
        return model.predict_proba(X)

    def anomaly_proba(self, X: Any) -> np.ndarray:
        """P(anomaly | x) for each row of ``X``: ``(N,)``."""
        model, X = self._fitted_model(X)
        return model.anomaly_proba(X)

    def score_samples(self, X: Any) -> np.ndarray:
        """``(N,)`` normality score ``log P(normal | x) - log P(anomaly | x)``: higher is more
        normal (scikit-learn's convention)."""
        model, X = self._fitted_model(X)
        return model.score_samples(X)

    def decision_function(self, X: Any) -> np.ndarray:
        """``(N,)``: negative for rows flagged as anomalies (P(anomaly | x) > threshold)."""
        model, X = self._fitted_model(X)
        return model.decision_function(X)

    def predict(self, X: Any) -> np.ndarray:
        """``(N,)`` integers: 1 normal, -1 anomaly (P(anomaly | x) > threshold)."""
        model, X = self._fitted_model(X)
        return model.predict(X)

    def log_likelihood(self, X: Any) -> np.ndarray:
        """Pointwise ``log p(x_n | draw)``, ``(S, N)`` (see the model's)."""
        model, X = self._fitted_model(X)
        return model.log_likelihood(X)

    @property
    def offset_(self) -> float:
        """``decision_function = score_samples - offset_``."""
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(self)
        return self.model_.offset_

    @property
    def contamination_(self) -> float:
        """Posterior mean of the contamination (anomaly weight)."""
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(self)
        return self.model_.contamination_

    def contamination_interval(self, prob: float = 0.9) -> tuple[float, float]:
        """Central ``prob`` posterior interval of the contamination."""
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(self)
        return self.model_.contamination_interval(prob)

    def to_inference_data(self, X: Any = None) -> Any:
        """ArviZ ``InferenceData`` of the fit (see the model's)."""
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(self)
        idata = self.model_.to_inference_data(X)
        if "feature_names_in_" in vars(self):  # set by validate_data for a DataFrame
            from bayesvae.infer.coords import label_dims

            names = [str(name) for name in self.feature_names_in_]
            idata = label_dims(idata, {"feature": names})
        return idata

    def save(self, path: str | Path | RunWriter) -> Path:
        """Write the fitted model as a run folder (config.yaml, model.pt, metrics.csv for SVI);
        :meth:`load` rebuilds the estimator."""
        from sklearn.utils.validation import check_is_fitted

        from bayesvae.runs import save_model

        check_is_fitted(self)
        history = self.result_.history if self.model_.method == "svi" else None
        return save_model(self.model_, path, history=history, fit_config={"method": self.method})

    @classmethod
    def load(cls, path: str | Path) -> AnomalyMixture:
        """The estimator of a run folder written by :meth:`save` or ``bayesvae anomaly``."""
        from bayesvae.runs import load

        model = load(path)
        if not isinstance(model, AnomalyMixtureModel):
            raise ValueError(f"{path} holds a {type(model).__name__}, not an AnomalyMixture.")
        estimator = cls(**model.get_params())
        estimator.model_, estimator.result_ = model, None
        estimator.n_features_in_ = int(model.config["n_features"])
        estimator.n_components_, estimator.covariance_ = model.n_components, model.covariance
        estimator.shape_ = {
            "n_components": model.n_components,
            "covariance": model.covariance,
            "reason": "loaded from a run folder.",
        }
        return estimator

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.non_deterministic = False  # seeded: the same seed gives the same fit on the CPU
        return tags


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
        model: the fitted :class:`AnomalyMixture`.
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
            "n_components": self.model.n_components_,
            "covariance": self.model.covariance_,
            "shape_reason": self.model.shape_["reason"],
            "shape_selection": self.model.shape_.get("selection"),
            # the anomaly component's standard deviation per feature, in standard deviations
            "anomaly_scale": dict(
                zip(self.feature_names, self.model.model_.anomaly_scales.tolist(), strict=True)
            ),
            "method": self.model.method,
            "threshold": self.model.threshold,
            **self.metrics,
        }

    def table(self) -> str:
        """A short plain-text summary."""
        m = self.metrics
        lines = [
            f"AnomalyMixture ({self.model.method}, K={self.model.n_components_}, "
            f"{self.model.covariance_} covariance) on {len(self.scores)} rows x "
            f"{len(self.feature_names)} features",
            f"shape: {self.model.shape_['reason']}",
            f"contamination: posterior mean {m['contamination_mean']:.4f}, 90% interval "
            f"[{m['contamination_interval'][0]:.4f}, {m['contamination_interval'][1]:.4f}]",
            f"flagged: {m['flagged']} rows (P(anomaly | x) > {self.model.threshold:g})",
        ]
        if "aucroc" in m:
            lines.append(f"AUCROC {m['aucroc']:.4f}   AUCPR {m['aucpr']:.4f}")
        return "\n".join(lines)

    def save(self, out: str | Path | RunWriter) -> Path:
        """Write a run folder: the model (config.yaml, model.pt, metrics.csv for SVI),
        ``scores.csv``, ``result.json``, ``scores.png``, ``projection.png`` and, for MCMC,
        ``posterior.nc`` (its pointwise log-likelihood only when it has at most
        :data:`MAX_SAVED_LOG_LIKELIHOOD` values). The folder is saved whole
        (:class:`bayesvae.runs.RunWriter`): a run already at ``out`` is replaced."""
        from bayesvae.infer.svi import FitResult
        from bayesvae.report import plots
        from bayesvae.runs import save_model, writing

        model, result = self.model.model_, self.model.result_

        svi = isinstance(result, FitResult)
        history = result.history if svi else None
        fit_config = dict(result.settings) if svi else {}
        fit_config.setdefault("method", model.method)
        fit_config.setdefault("seed", model.seed)
        with writing(out) as run:
            save_model(model, run, history=history, fit_config=fit_config)
            run.write_csv("scores.csv", self.scores)
            run.write_json("result.json", self.to_dict())
            plots.anomaly_scores(
                self.scores["p_anomaly"],
                run.file("scores.png"),
                labels=self.labels,
                threshold=model.threshold,
            )
            plots.anomaly_projection(
                model.standardize(self.features).cpu().numpy(),
                self.scores["flag"].to_numpy(),
                run.file("projection.png"),
                labels=self.labels,
            )
            if model.method == "mcmc":
                run.write_netcdf("posterior.nc", self._saved_inference_data())
        return run.path

    def _saved_inference_data(self) -> Any:
        """The MCMC posterior to save (without a pointwise log-likelihood too big to keep)."""
        idata = self.model.to_inference_data()
        if "log_likelihood" in idata.groups():
            pointwise = idata.log_likelihood["obs"]
            if pointwise.size > MAX_SAVED_LOG_LIKELIHOOD:  # e.g. 11k rows x 2000 draws
                import arviz as az

                idata = az.InferenceData(
                    **{g: idata[g] for g in idata.groups() if g != "log_likelihood"}
                )
        return idata


def detect_anomalies(
    source: Any,
    *,
    columns: Any = None,
    label_column: str | int | None = None,
    labels: Any = None,
    progress: bool = False,
    **model_options: Any,
) -> AnomalyRun:
    """Fit an :class:`AnomalyMixture` to ``source`` and score every row.

    Args:
        source: an array ``(N, D)``, a DataFrame, or a path to a ``.csv``, ``.npy`` or ``.npz``
            (see :func:`bayesvae.data.read_features` for ``columns`` and ``label_column``).
        labels: 0/1 labels ``(N,)`` for an array ``source`` (1 = anomaly); used only to report
            AUCROC/AUCPR, never for fitting.
        model_options: :class:`AnomalyMixture` arguments (``n_components``,
            ``contamination``, ``method``, ...), validated before any work.
    """
    import pandas as pd

    model = AnomalyMixture(**model_options)
    model.build_model()  # bad options fail here, before the data are read
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


VAE_SCORES = ("elbo", "iwae")


class VAEAnomalyDetector(_PicklesItsModel, OutlierMixin, BaseEstimator):
    """Anomaly detection with a VAE, in scikit-learn's outlier-detector conventions.

    A :class:`~bayesvae.models.VAE` is fitted to the (mostly normal) training data; a point's
    anomaly score is its negative ELBO (``scoring="elbo"``) or its negative importance-weighted
    ``log p(x)`` (``scoring="iwae"``, ``num_samples`` particles). The KL term is kept: unlike
    PyOD's VAE default, which scores by reconstruction error alone, both scores are (bounds on)
    the model's density, so points the encoder maps to unusual latents count as anomalous too.

    Args:
        latent_dim, hidden_dims, encoder, beta: the VAE (see :class:`~bayesvae.models.VAE`).
        likelihood: ``"gaussian"`` (tabular data; features standardized with the training mean
            and standard deviation, and a learned per-feature scale) or ``"bernoulli"`` (data in
            [0, 1], e.g. images; used as given).
        scoring: ``"elbo"`` or ``"iwae"``.
        num_samples: guide draws per point for the score (the ELBO's average, or IWAE's ``K``);
            every row uses the same draws (common random numbers), so a row's score does not
            depend on the rows scored with it.
        contamination: expected share of anomalies in the training data, in (0, 0.5]; sets the
            threshold of :meth:`predict` at that quantile of the training scores.
        epochs, batch_size, lr: training (:func:`bayesvae.fit`).
        seed: seeds the weights, training and scoring.
        progress: show a progress bar while training.

    Attributes (after :meth:`fit`):
        model_: the fitted VAE; ``history_``: its training history;
        offset_: ``decision_function = score_samples - offset_``;
        mean_, scale_: the standardization (Gaussian likelihood).

    Example:
        >>> detector = VAEAnomalyDetector(epochs=50).fit(X_train)
        >>> detector.score_samples(X_test)     # (N,) higher = more normal (the ELBO, in nats)
        >>> detector.predict(X_test)           # (N,) 1 normal, -1 anomaly
    """

    def __init__(
        self,
        *,
        latent_dim: int = 8,
        hidden_dims: tuple[int, ...] = (64,),
        encoder: str = "mlp",
        likelihood: str = "gaussian",
        beta: float = 1.0,
        scoring: str = "elbo",
        num_samples: int = 10,
        contamination: float = 0.1,
        epochs: int = 100,
        batch_size: int = 128,
        lr: float = 1e-3,
        seed: int = 0,
        progress: bool = False,
    ) -> None:
        self.latent_dim = latent_dim
        self.hidden_dims = hidden_dims
        self.encoder = encoder
        self.likelihood = likelihood
        self.beta = beta
        self.scoring = scoring
        self.num_samples = num_samples
        self.contamination = contamination
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.seed = seed
        self.progress = progress

    def _check_options(self) -> None:
        from bayesvae.data.validation import check_choice, check_number, check_positive_int

        check_choice("scoring", self.scoring, VAE_SCORES)
        check_positive_int("num_samples", self.num_samples)
        check_number("contamination", self.contamination, low=0, high=0.5, low_open=True)

    def _prepare(self, name: str, X: Any, *, reset: bool = False) -> Any:
        """scikit-learn's input checks (numeric, finite, not sparse, ``(N, ...)``, at least 2
        rows to fit, the fitted number of features), then the fitted standardization."""
        import torch
        from sklearn.utils.validation import validate_data

        if isinstance(X, torch.Tensor):
            X = X.detach().cpu().numpy()
        array = validate_data(
            self, X, reset=reset, dtype=np.float32, allow_nd=True, ensure_min_samples=1 + reset
        )
        x = torch.as_tensor(array)
        if hasattr(self, "model_") and tuple(x.shape[1:]) != self.model_.input_shape:
            raise ValueError(
                f"{name} rows must have shape {self.model_.input_shape} (as in fit), got "
                f"{tuple(x.shape[1:])}."
            )
        if self.likelihood == "gaussian" and hasattr(self, "mean_"):
            x = (x - torch.as_tensor(self.mean_)) / torch.as_tensor(self.scale_)
        return x

    def fit(self, X: Any, y: Any = None) -> VAEAnomalyDetector:
        """Fit the VAE to ``X: (N, *input_shape)`` (``y`` is ignored, as in scikit-learn)."""
        import torch

        from bayesvae.infer.svi import fit
        from bayesvae.models.vae import VAE

        self._check_options()
        for attribute in ("model_", "mean_", "scale_"):
            self.__dict__.pop(attribute, None)
        x = self._prepare("X", X, reset=True)
        if self.likelihood == "gaussian":
            mean, std = x.mean(0), x.std(0)
            constant = torch.nonzero((std <= 1e-12).reshape(-1)).reshape(-1).tolist()
            if constant:
                raise ValueError(
                    f"X has zero-variance column(s) {constant}: they carry no information "
                    "and cannot be standardized; drop them first."
                )
            self.mean_, self.scale_ = mean.numpy(), std.numpy()
            x = (x - mean) / std
        model = VAE(
            tuple(x.shape[1:]),
            latent_dim=self.latent_dim,
            hidden_dims=tuple(self.hidden_dims),
            encoder=self.encoder,
            likelihood=self.likelihood,
            beta=self.beta,
            seed=self.seed,
        )
        result = fit(
            model,
            x,
            epochs=self.epochs,
            batch_size=self.batch_size,
            lr=self.lr,
            seed=self.seed,
            progress=self.progress,
        )
        self.model_, self.history_ = result.model, result.history
        self.offset_ = float(np.quantile(self._scores(x), self.contamination))
        return self

    def _scores(self, x: Any) -> np.ndarray:
        """ELBO or IWAE bound per row of prepared ``x`` (nats; higher = more normal)."""
        if self.scoring == "elbo":
            values = self.model_.elbo(
                x, num_samples=self.num_samples, seed=self.seed, common_noise=True
            )
        else:
            values = self.model_.log_likelihood(
                x,
                num_samples=self.num_samples,
                seed=self.seed,
                particle_batch=500,
                common_noise=True,
            )
        return values.numpy().astype(np.float64)

    def _check_fitted(self) -> None:
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(self)  # NotFittedError, as scikit-learn's own detectors

    def score_samples(self, X: Any) -> np.ndarray:
        """``(N,)`` the ELBO (or IWAE bound) of each row in nats: higher is more normal
        (scikit-learn's convention); the anomaly score is its negative."""
        self._check_fitted()
        return self._scores(self._prepare("X", X))

    def decision_function(self, X: Any) -> np.ndarray:
        """``(N,)``: negative for rows flagged as anomalies."""
        self._check_fitted()
        return self.score_samples(X) - self.offset_

    def predict(self, X: Any) -> np.ndarray:
        """``(N,)`` integers: 1 normal, -1 anomaly (score below the training ``contamination``
        quantile)."""
        return np.where(self.decision_function(X) < 0, -1, 1)

    def save(self, path: str | Path | RunWriter) -> Path:
        """Write a run folder: the VAE (config.yaml, model.pt, metrics.csv), with the detector's
        settings, standardization and threshold under ``fit.detector`` in config.yaml; load it
        with :meth:`load`. The folder is saved whole; a run already at ``path`` is replaced."""
        from bayesvae.runs import save_model

        self._check_fitted()
        detector = {
            "params": self.get_params(),
            "offset": self.offset_,
            "mean": None if not hasattr(self, "mean_") else np.asarray(self.mean_).tolist(),
            "scale": None if not hasattr(self, "scale_") else np.asarray(self.scale_).tolist(),
        }
        detector["params"]["hidden_dims"] = list(self.hidden_dims)
        return save_model(
            self.model_, path, history=self.history_, fit_config={"detector": detector}
        )

    @classmethod
    def load(cls, path: str | Path) -> VAEAnomalyDetector:
        """The detector saved by :meth:`save` in run folder ``path`` (on the CPU)."""
        from bayesvae.runs import load, open_run

        run = open_run(path)
        config = run.config
        saved = (config.get("fit") or {}).get("detector")
        if saved is None:
            raise ValueError(
                f"{path} holds no VAEAnomalyDetector (no fit.detector in config.yaml)."
            )
        params = dict(saved["params"], hidden_dims=tuple(saved["params"]["hidden_dims"]))
        if "score" in params:  # saved before the option was renamed scoring
            params["scoring"] = params.pop("score")
        detector = cls(**params)
        detector.model_ = load(path)
        detector.offset_ = float(saved["offset"])
        detector.n_features_in_ = int(detector.model_.input_shape[0])
        if saved["mean"] is not None:
            detector.mean_ = np.asarray(saved["mean"], dtype=np.float32)
            detector.scale_ = np.asarray(saved["scale"], dtype=np.float32)
        detector.history_ = run.metrics()
        return detector
