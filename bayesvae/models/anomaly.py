"""Bayesian anomaly mixtures: normal data from a mixture of K Gaussians, anomalies from one broad
Gaussian, and each point's posterior probability of being an anomaly.

Generative model, on standardized features (each column centred and scaled to unit variance with
the training data's mean and standard deviation, stored on the model)::

    contamination ~ Beta(c0 * s, (1 - c0) * s)          # c0 = expected anomaly rate, s = strength
    weights       ~ Dirichlet(1_K)                      # only when K > 1
    for each component k:                               # pyro.plate("components", K)
        loc_k       ~ Normal(0, 3)^D
        scale_k     ~ LogNormal(0, 1)^D
        corr_chol_k ~ LKJCholesky(D, eta)               # covariance="full" only
    for each point n:                                   # pyro.plate("data", N)
        assignment_n ~ Categorical([(1 - c) w_1, ..., (1 - c) w_K, c])   # summed out
        x_n | assignment_n = k <= K ~ Normal(loc_k, cov_k + reg_covar I)
        x_n | assignment_n = K + 1  ~ Normal(0, diag(a)^2)               # the anomaly component

The anomaly component is a fixed, broad Gaussian around the data's centre. Its standard
deviation per feature, ``a_d``, is fixed by the training data like the standardization: with
``anomaly_scale="auto"`` (the default) it is half the feature's training range, and never less
than :data:`MIN_ANOMALY_SCALE` = 4 standard deviations, so that it covers every training row the
way the uniform "noise component" over the data's bounding box of Banfield & Raftery (1993)
does; a number gives the same ``a_d`` to every feature. Covering the range matters on
heavy-tailed features: a component of 4 standard deviations would be narrower than the normal
data's own tails and would take them (on such data the fitted contamination then far exceeds
the true anomaly rate). It is a proper density with full support, so a point far outside the
training range still gets a finite, well-ordered score (a uniform box would give zero density
outside the box); it is fixed rather than learnt so that it cannot shift to swallow the normal
data; and it is lighter-tailed than a Student-t, so P(anomaly | x) rises monotonically as ``x``
leaves the normal components. ``reg_covar`` (added to every normal
component's variances, like scikit-learn's) stops a component collapsing onto duplicated rows.

The assignment is a discrete latent variable marked for parallel enumeration: ``bayesvae.fit``
uses ``TraceEnum_ELBO`` for this family, and the NumPyro twin sums it out with ``logsumexp``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from typing import Any, ClassVar

import numpy as np
import pyro
import pyro.distributions as dist
import torch
from pyro.distributions import constraints

from bayesvae.data.validation import (
    check_choice,
    check_non_negative_number,
    check_number,
    check_positive_int,
    check_positive_number,
    check_probability,
)
from bayesvae.models.base import MODEL_REGISTRY, PyroModel

__all__ = [
    "AnomalyMixtureModel",
    "LOC_PRIOR_SCALE",
    "MIN_ANOMALY_SCALE",
    "SCALE_PRIOR",
    "check_features",
    "relabel_components",
]

LOC_PRIOR_SCALE = 3.0  # Normal(0, 3) on component means, in standard deviations
#: the anomaly component's smallest standard deviation under ``anomaly_scale="auto"``
MIN_ANOMALY_SCALE = 4.0
SCALE_PRIOR = (0.0, 1.0)  # LogNormal(0, 1) on component scales, in standard deviations
COVARIANCES = ("diag", "full")
SITES = ("contamination", "weights", "loc", "scale", "corr_chol")  # the global latent sites
GUIDES = ("meanfield", "map")
METHODS = ("svi", "mcmc")
BACKENDS = ("auto", "pyro", "numpyro")
#: ``backend="auto"`` trains with NumPyro above this many SVI steps
NUMPYRO_MIN_STEPS = 3000
#: Keyword arguments of :class:`AnomalyMixtureModel` that are hyperparameters (``get_params``).
_PARAM_NAMES = (
    "n_components",
    "covariance",
    "contamination",
    "contamination_strength",
    "anomaly_scale",
    "reg_covar",
    "lkj_concentration",
    "method",
    "backend",
    "guide_type",
    "epochs",
    "batch_size",
    "lr",
    "num_warmup",
    "num_samples",
    "num_chains",
    "num_posterior_draws",
    "threshold",
    "seed",
)


def check_features(name: str, X: Any, *, min_rows: int = 1) -> np.ndarray:
    """``X`` (N, D) as a float64 array; refuse non-numeric, non-2-D, non-finite or short input."""
    if isinstance(X, torch.Tensor):
        X = X.detach().cpu().numpy()
    array = np.asarray(X)
    if array.dtype == object or not (
        np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_
    ):
        raise TypeError(
            f"{name} must be numeric (N, D); got dtype {array.dtype}. Encode or drop "
            "non-numeric columns first."
        )
    if array.ndim != 2:
        raise ValueError(f"{name} must be 2-D (N rows, D features), got shape {array.shape}.")
    if array.shape[0] < min_rows:
        raise ValueError(
            f"{name} needs at least {min_rows} row(s) to fit, got {array.shape[0]}."
            if min_rows > 1
            else f"{name} is empty; expected at least one row."
        )
    if array.shape[1] < 1:
        raise ValueError(f"{name} has no feature columns (shape {array.shape}).")
    array = array.astype(np.float64)
    finite = np.isfinite(array)
    if not finite.all():
        rows = np.flatnonzero(~finite.all(axis=1))
        raise ValueError(
            f"{name} contains NaN or infinite values in {len(rows)} row(s) (first: row "
            f"{int(rows[0])}); clean or impute them first."
        )
    largest = float(np.abs(array).max())
    if largest > 1e100:  # squares overflow: variances and densities would be inf or 0
        raise ValueError(
            f"{name} has values as large as {largest:.3g}; rescale those columns (other units "
            "or a log transform) first."
        )
    return array


def _component_scale_tril(
    scale: torch.Tensor, corr_chol: torch.Tensor, reg_covar: float
) -> torch.Tensor:
    """Cholesky factors ``(K, D, D)`` of ``diag(scale) C diag(scale) + reg_covar I``."""
    factor = scale.unsqueeze(-1) * corr_chol
    cov = factor @ factor.transpose(-1, -2)
    eye = torch.eye(scale.shape[-1], dtype=scale.dtype, device=scale.device)
    return torch.linalg.cholesky(cov + reg_covar * eye)


def relabel_components(
    draws: dict[str, np.ndarray], direction: np.ndarray, *, sample_dims: int = 1
) -> dict[str, np.ndarray]:
    """Undo label switching: in every draw, order the normal components by the projection of
    their means on ``direction`` (the data's first principal axis), permuting every
    per-component site (``loc``, ``scale``, ``weights``, ``corr_chol``) the same way.

    ``draws`` arrays carry ``sample_dims`` leading sample dimensions (2 for ``(chain, draw)``)
    followed by the component dimension."""
    loc = np.asarray(draws["loc"])
    order = np.argsort(loc @ direction, axis=-1)  # (..., K)
    relabelled = dict(draws)
    for name in ("loc", "scale", "weights", "corr_chol"):
        if name not in draws:
            continue
        value = np.asarray(draws[name])
        index = order.reshape(order.shape + (1,) * (value.ndim - sample_dims - 1))
        relabelled[name] = np.take_along_axis(value, index, axis=sample_dims)
    return relabelled


class AnomalyMixtureModel(PyroModel):
    """A Gaussian mixture for normal data plus a broad anomaly component, fitted by SVI
    (enumerated assignments, ``TraceEnum_ELBO``) or NUTS (the NumPyro twin, several chains).

    It is both a Pyro model/guide pair (``model(x)``/``guide(x)`` on standardized ``x: (N, D)``;
    ``check_data(X)`` validates raw features and standardizes them) and a scikit-learn style
    estimator: ``fit(X)``, ``predict_proba(X)``, ``anomaly_proba(X)``, ``score_samples(X)``,
    ``decision_function(X)``, ``predict(X)`` (1 normal, -1 anomaly, as scikit-learn's detectors),
    ``get_params``/``set_params``.

    Args:
        n_components: K >= 1 Gaussian components for the normal data.
        covariance: ``"diag"`` or ``"full"`` (LKJ prior on each component's correlations).
        contamination: expected anomaly rate c0 in (0, 0.5): the mean of the Beta prior.
        contamination_strength: prior sample size s of that Beta prior (larger = firmer).
        anomaly_scale: standard deviation of the anomaly component, in standard deviations:
            ``"auto"`` (half of each feature's training range, at least
            :data:`MIN_ANOMALY_SCALE`) or a positive number for every feature.
        reg_covar: added to each normal component's variances (standardized units).
        lkj_concentration: LKJ eta (> 0) for ``covariance="full"``; 1 is uniform.
        method: ``"svi"`` (bayesvae.fit, TraceEnum_ELBO) or ``"mcmc"`` (NumPyro NUTS).
        backend: SVI's loop: ``"pyro"`` (a Python step per minibatch), ``"numpyro"`` (the
            NumPyro twin of model and mean-field guide, assignments summed out exactly as the
            enumeration does, one jitted scan per epoch; its parameters are written back into
            Pyro's param store, so every query is the same) or ``"auto"`` (default: NumPyro when
            the mean-field guide would take more than 3,000 Pyro steps, see
            :meth:`svi_backend`). NUTS always runs on NumPyro.
        guide_type: SVI guide over the global parameters: ``"meanfield"`` (independent Beta,
            Dirichlet, Normal and LogNormal factors; correlations as point estimates) or
            ``"map"`` (point estimates of everything).
        epochs, batch_size, lr: SVI settings (``batch_size`` rows per step, scaled to N).
        num_warmup, num_samples, num_chains: NUTS settings.
        num_posterior_draws: guide draws averaged over for SVI predictions.
        threshold: ``predict`` flags a point when P(anomaly | x) > threshold.
        seed: seeds k-means initialisation, training and posterior draws.
        n_features: set by ``fit`` (recorded so a saved model can be rebuilt).
    """

    max_plate_nesting: ClassVar[int] = 1
    default_elbo: ClassVar[str] = "enum"
    # the log density sums over every row: at 50k rows it is ~1e6 nats, where 32-bit floats
    # resolve only ~0.1, and NUTS's step size collapsed to 1e-6 with 1,023 leapfrog steps a draw
    nuts_float64: ClassVar[bool] = True
    # many rows make the posterior nearly Gaussian but concentrated and correlated (standard
    # deviations down to 1e-3, condition number ~1e6 on 50k x 10 rows with full covariance):
    # adapted mass matrices needed 110-1,000 leapfrog steps a draw, the inverse Hessian at the
    # mode about 7
    nuts_dense_mass: ClassVar[bool | str] = "laplace"

    def __init__(
        self,
        n_components: int = 1,
        *,
        covariance: str = "diag",
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
        n_features: int | None = None,
    ) -> None:
        config = dict(locals())
        del config["self"], config["__class__"]
        _validate_params(config)
        super().__init__(config)
        self._set_attributes(config)
        self.result_: Any = None
        if n_features is not None:
            self._allocate(n_features)

    # ------------------------------------------------------------------ scikit-learn params
    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The hyperparameters (constructor arguments), as scikit-learn's ``get_params``."""
        return {name: self.config[name] for name in _PARAM_NAMES}

    def set_params(self, **params: Any) -> AnomalyMixtureModel:
        """Change hyperparameters (validated); the model must be fitted again afterwards."""
        unknown = sorted(set(params) - set(_PARAM_NAMES))
        if unknown:
            raise ValueError(
                f"unknown parameter(s) {unknown} for AnomalyMixture; valid: {list(_PARAM_NAMES)}."
            )
        config = {**self.config, **params}
        _validate_params(config)
        self.config = config
        self._set_attributes(config)
        self.result_ = None
        if self.is_prepared:  # stored draws no longer match the settings
            self._allocate(self.config["n_features"])
        return self

    def svi_backend(self, num_rows: int) -> str:
        """The loop SVI trains with on ``num_rows`` rows: ``backend`` resolved. ``"auto"`` is
        ``"numpyro"`` when Pyro's loop would take more than :data:`NUMPYRO_MIN_STEPS` steps
        (``epochs`` x minibatches per epoch) with the mean-field guide, else ``"pyro"``: NumPyro
        compiles for a few seconds first, which only many steps repay (measured in
        ``benchmarks/speed.py``: Pyro is faster at 1,800 steps, NumPyro twice as fast at 7,500)."""
        if self.backend != "auto":
            return self.backend
        steps = self.epochs * -(-num_rows // min(self.batch_size, num_rows))
        return "numpyro" if self.guide_type == "meanfield" and steps > NUMPYRO_MIN_STEPS else "pyro"

    def _set_attributes(self, config: dict[str, Any]) -> None:
        for name in _PARAM_NAMES:
            setattr(self, name, config[name])

    # ------------------------------------------------------------------ data
    def _allocate(self, num_features: int) -> None:
        """Buffers for the standardization and the initial values (shapes fixed by D, K)."""
        K, D = self.n_components, num_features
        self.config["n_features"] = D
        for name in list(self._buffers):  # shapes follow K, D, method: start clean
            del self._buffers[name]
        self.register_buffer("feature_mean", torch.zeros(D, dtype=torch.float64))
        self.register_buffer("feature_scale", torch.ones(D, dtype=torch.float64))
        self.register_buffer("principal_axis", torch.ones(D) / math.sqrt(D))
        # the anomaly component's standard deviation per feature (standardized units)
        self.register_buffer("anomaly_scales", torch.full((D,), self._fixed_anomaly_scale))
        self.register_buffer("init_loc", torch.zeros(K, D))
        self.register_buffer("init_scale", torch.ones(K, D))
        self.register_buffer("init_weights", torch.full((K,), 1.0 / K))
        # The posterior, kept on the module (saved with it, immune to pyro.clear_param_store):
        # NUTS draws (chains flattened) or guide draws, written at the end of fit().
        self.register_buffer("fitted", torch.tensor(False))
        S = self._num_stored_draws
        self.register_buffer("posterior_contamination", torch.zeros(S))
        self.register_buffer("posterior_loc", torch.zeros(S, K, D))
        self.register_buffer("posterior_scale", torch.ones(S, K, D))
        if K > 1:
            self.register_buffer("posterior_weights", torch.full((S, K), 1.0 / K))
        if self.covariance == "full":
            self.register_buffer("posterior_corr_chol", torch.eye(D).expand(S, K, D, D).clone())
        # the mean-field guide's Beta(a, b) on the contamination (exact intervals)
        self.register_buffer("contamination_beta", torch.ones(2))

    @property
    def _fixed_anomaly_scale(self) -> float:
        """The anomaly scale before training data are seen (``"auto"``: its floor)."""
        scale = self.anomaly_scale
        return MIN_ANOMALY_SCALE if scale == "auto" else float(scale)

    def load_state_dict(self, state_dict: Any, strict: bool = True, assign: bool = False) -> Any:
        """As :meth:`torch.nn.Module.load_state_dict`; a model saved before the anomaly scale
        was stored per feature gets its fixed ``anomaly_scale`` for every feature."""
        if "anomaly_scales" not in state_dict and "feature_mean" in state_dict:
            D = state_dict["feature_mean"].shape[0]
            state_dict = {
                **state_dict,
                "anomaly_scales": torch.full((D,), self._fixed_anomaly_scale),
            }
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    @property
    def _num_stored_draws(self) -> int:
        if self.method == "mcmc":
            return self.num_chains * self.num_samples
        return 1 if self.guide_type == "map" else self.num_posterior_draws

    @property
    def is_prepared(self) -> bool:
        return self.config.get("n_features") is not None and hasattr(self, "feature_mean")

    def prepare(self, X: Any) -> torch.Tensor:
        """Fix the standardization and the k-means starting point from training data ``X``
        (N, D); forget any earlier fit. Returns the standardized data (N, D), float32."""
        from sklearn.cluster import KMeans

        array = check_features("X", X, min_rows=2)
        std = array.std(axis=0)
        constant = np.flatnonzero(std <= 1e-12 * np.maximum(1.0, np.abs(array).max(axis=0)))
        if len(constant):
            raise ValueError(
                f"X has zero-variance column(s) {constant.tolist()}: they carry no information "
                "and cannot be standardized; drop them first."
            )
        if self.covariance == "full" and array.shape[1] < 2:
            raise ValueError(
                "covariance='full' needs at least two features (X has one); use 'diag'."
            )
        if array.shape[0] < self.n_components:
            raise ValueError(
                f"X has {array.shape[0]} rows, fewer than n_components={self.n_components}."
            )
        self._forget_fit()
        self._allocate(array.shape[1])
        mean = array.mean(axis=0)
        self.feature_mean.copy_(torch.from_numpy(mean))
        self.feature_scale.copy_(torch.from_numpy(std))
        z = (array - mean) / std
        if self.anomaly_scale == "auto":
            half_range = (z.max(axis=0) - z.min(axis=0)) / 2
            self.anomaly_scales.copy_(torch.as_tensor(np.maximum(half_range, MIN_ANOMALY_SCALE)))
        _, _, vt = np.linalg.svd(z[: min(len(z), 20000)], full_matrices=False)
        self.principal_axis.copy_(torch.as_tensor(vt[0], dtype=torch.float32))
        kmeans = KMeans(self.n_components, n_init=4, random_state=self.seed).fit(z)
        counts = np.bincount(kmeans.labels_, minlength=self.n_components).astype(np.float64)
        spread = np.stack(
            [
                z[kmeans.labels_ == k].std(axis=0) if counts[k] > 1 else np.ones(z.shape[1])
                for k in range(self.n_components)
            ]
        )
        order = np.argsort(kmeans.cluster_centers_ @ vt[0])  # the relabelling convention
        self.init_loc.copy_(torch.as_tensor(kmeans.cluster_centers_[order]))
        self.init_scale.copy_(torch.as_tensor(np.maximum(spread[order], 0.05)))
        self.init_weights.copy_(torch.as_tensor((counts[order] + 1) / (counts.sum() + len(counts))))
        return torch.as_tensor(z, dtype=torch.float32)

    def standardize(self, X: Any) -> torch.Tensor:
        """Raw features ``X`` (N, D) -> standardized ``(N, D)`` float32 with the fitted scaler."""
        if not self.is_prepared:
            raise RuntimeError("the model has not seen training data yet; call fit(X) first.")
        array = check_features("X", X)
        if array.shape[1] != self.config["n_features"]:
            raise ValueError(
                f"X has {array.shape[1]} feature(s); the model was fitted on "
                f"{self.config['n_features']}."
            )
        mean = self.feature_mean.cpu().numpy()
        scale = self.feature_scale.cpu().numpy()
        return torch.as_tensor((array - mean) / scale, dtype=torch.float32, device=self.device)

    def unstandardize(self, z: Any) -> np.ndarray:
        """Inverse of :meth:`standardize`: standardized ``(N, D)`` -> original units."""
        z = torch.as_tensor(z).detach().cpu().double().numpy()
        return z * self.feature_scale.cpu().numpy() + self.feature_mean.cpu().numpy()

    def check_data(self, X: Any) -> tuple[torch.Tensor]:
        """Validate raw features ``X`` (N, D) and return them standardized; the first data a
        model sees (its training data) fix the standardization."""
        if not self.is_prepared:
            return (self.prepare(X),)
        return (self.standardize(X).cpu(),)

    # ------------------------------------------------------------------ Pyro model and guide
    @property
    def contamination_prior(self) -> tuple[float, float]:
        """``(a, b)`` of the Beta prior on the contamination: mean ``contamination``, total
        strength ``contamination_strength`` (the NumPyro twin reads it too)."""
        c0, s = self.contamination, self.contamination_strength
        return c0 * s, (1 - c0) * s

    def model(self, x: torch.Tensor, num_data: int | None = None) -> None:
        """``x``: standardized features (B, D), a minibatch of ``num_data`` rows."""
        K, D = self.n_components, x.shape[-1]
        draw: dict[str, torch.Tensor] = {}
        a0, b0 = self.contamination_prior
        draw["contamination"] = pyro.sample(
            "contamination", dist.Beta(x.new_tensor(a0), x.new_tensor(b0))
        )
        if K > 1:
            draw["weights"] = pyro.sample("weights", dist.Dirichlet(x.new_ones(K)))
        with pyro.plate("components", K):
            draw["loc"] = pyro.sample(
                "loc", dist.Normal(x.new_zeros(D), LOC_PRIOR_SCALE).to_event(1)
            )
            draw["scale"] = pyro.sample(
                "scale",
                dist.LogNormal(x.new_full((D,), SCALE_PRIOR[0]), SCALE_PRIOR[1]).to_event(1),
            )
            if self.covariance == "full":
                draw["corr_chol"] = pyro.sample(
                    "corr_chol", dist.LKJCholesky(D, x.new_tensor(self.lkj_concentration))
                )
        log_mix, locs, scale_trils = self._components(draw, D)
        with self.data_plate(x, num_data):
            assignment = pyro.sample(
                "assignment",
                dist.Categorical(logits=log_mix),
                infer={"enumerate": "parallel"},
            )
            pyro.sample(
                "obs",
                dist.MultivariateNormal(locs[assignment], scale_tril=scale_trils[assignment]),
                obs=x,
            )

    def _components(
        self, draw: dict[str, torch.Tensor], num_features: int
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Mixture log-weights (K+1,), means (K+1, D) and Cholesky factors (K+1, D, D), the
        anomaly component last."""
        loc, scale = draw["loc"], draw["scale"]
        K = self.n_components
        weights = draw.get("weights", loc.new_ones(K))
        contamination = draw["contamination"]
        log_mix = torch.cat(
            [torch.log1p(-contamination) + torch.log(weights), torch.log(contamination)[None]]
        )
        eye = torch.eye(num_features, dtype=loc.dtype, device=loc.device)
        if "corr_chol" in draw:
            normal_trils = _component_scale_tril(scale, draw["corr_chol"], self.reg_covar)
        else:
            normal_trils = (scale**2 + self.reg_covar).sqrt().unsqueeze(-1) * eye
        locs = torch.cat([loc, loc.new_zeros(1, num_features)])
        anomaly_tril = self.anomaly_scales.to(loc).unsqueeze(-1) * eye
        trils = torch.cat([normal_trils, anomaly_tril[None]])
        return log_mix, locs, trils

    def joint_log_prob(self, draw: dict[str, torch.Tensor], z: torch.Tensor) -> torch.Tensor:
        """``log p(assignment = k, x | draw)`` for standardized ``z`` (N, D) under one posterior
        draw (site -> value, as the guide returns): ``(N, K + 1)``, the anomaly column last."""
        log_mix, locs, trils = self._components(draw, z.shape[-1])
        return dist.MultivariateNormal(locs, scale_tril=trils).log_prob(z.unsqueeze(-2)) + log_mix

    def guide(self, x: torch.Tensor, num_data: int | None = None) -> dict[str, torch.Tensor]:
        """Mean-field (or MAP) guide over the global parameters; the assignment is enumerated
        in the model, so it does not appear here."""
        K, D, name = self.n_components, x.shape[-1], self.pyro_name
        draw: dict[str, torch.Tensor] = {}
        point = self.guide_type == "map"
        a0, b0 = self.contamination_prior
        init_c = a0 / (a0 + b0)
        if point:
            c = pyro.param(
                f"{name}.contamination", x.new_tensor(init_c), constraint=constraints.unit_interval
            )
            draw["contamination"] = pyro.sample("contamination", dist.Delta(c))
        else:
            # Beta(m k, (1 - m) k), started at the prior mean with the concentration a
            # conjugate update on N points would have: only the mean has far to travel.
            mean = pyro.param(
                f"{name}.contamination_mean", x.new_tensor(init_c), constraints.unit_interval
            )
            concentration = pyro.param(
                f"{name}.contamination_concentration",
                x.new_tensor(a0 + b0 + (num_data or x.shape[0])),
                constraints.positive,
            )
            draw["contamination"] = pyro.sample(
                "contamination", dist.Beta(mean * concentration, (1 - mean) * concentration)
            )
        if K > 1:
            init_w = self.init_weights.to(x)
            if point:
                w = pyro.param(f"{name}.weights", init_w, constraint=constraints.simplex)
                draw["weights"] = pyro.sample("weights", dist.Delta(w, event_dim=1))
            else:
                conc = pyro.param(
                    f"{name}.weights_concentration", init_w * 10 * K, constraints.positive
                )
                draw["weights"] = pyro.sample("weights", dist.Dirichlet(conc))
        loc_init = self.init_loc.to(x)
        log_scale_init = self.init_scale.to(x).log()
        with pyro.plate("components", K):
            loc = pyro.param(f"{name}.loc", loc_init)
            if point:
                scale = pyro.param(
                    f"{name}.scale", log_scale_init.exp(), constraint=constraints.positive
                )
                draw["loc"] = pyro.sample("loc", dist.Delta(loc, event_dim=1))
                draw["scale"] = pyro.sample("scale", dist.Delta(scale, event_dim=1))
            else:
                loc_sd = pyro.param(
                    f"{name}.loc_sd", torch.full_like(loc_init, 0.05), constraints.positive
                )
                log_scale = pyro.param(f"{name}.log_scale_loc", log_scale_init)
                log_scale_sd = pyro.param(
                    f"{name}.log_scale_sd", torch.full_like(loc_init, 0.05), constraints.positive
                )
                draw["loc"] = pyro.sample("loc", dist.Normal(loc, loc_sd).to_event(1))
                draw["scale"] = pyro.sample(
                    "scale", dist.LogNormal(log_scale, log_scale_sd).to_event(1)
                )
            if self.covariance == "full":
                corr = pyro.param(
                    f"{name}.corr_chol",
                    torch.eye(D, dtype=x.dtype, device=x.device).expand(K, D, D).clone(),
                    constraint=constraints.corr_cholesky,
                )
                draw["corr_chol"] = pyro.sample("corr_chol", dist.Delta(corr, event_dim=2))
        return draw

    def nuts_init_values(self) -> dict[str, np.ndarray]:
        """Every chain starts at the k-means solution (same labelling, no empty components)."""
        values = {
            "contamination": np.float32(self.contamination),
            "loc": self.init_loc.cpu().numpy(),
            "scale": self.init_scale.cpu().numpy(),
        }
        if self.n_components > 1:
            values["weights"] = self.init_weights.cpu().numpy()
        if self.covariance == "full":
            D = self.config["n_features"]
            values["corr_chol"] = np.broadcast_to(np.eye(D), (self.n_components, D, D)).copy()
        return values

    def postprocess_posterior(self, idata: Any) -> Any:
        """Relabel the normal components in every draw (see :func:`relabel_components`), so
        R-hat and ESS are computed on identified parameters."""
        posterior = idata.posterior
        draws = {name: posterior[name].to_numpy() for name in posterior.data_vars}
        relabelled = relabel_components(
            draws, self.principal_axis.cpu().numpy().astype(np.float64), sample_dims=2
        )
        for name, value in relabelled.items():
            posterior[name].values = value
        return idata

    def arviz_dims(self) -> tuple[dict[str, list[Any]], dict[str, list[str]]]:
        D = self.config["n_features"]
        coords = {"component": list(range(self.n_components)), "feature": list(range(D))}
        dims = {"loc": ["component", "feature"], "scale": ["component", "feature"]}
        if self.n_components > 1:
            dims["weights"] = ["component"]
        if self.covariance == "full":
            coords["feature_"] = list(range(D))
            dims["corr_chol"] = ["component", "feature", "feature_"]
        return coords, dims

    def _forget_fit(self) -> None:
        self.result_ = None
        store = pyro.get_param_store()
        for key in [k for k in store.keys() if k.startswith(self.pyro_name + ".")]:
            del store[key]

    def _check_fitted(self) -> None:
        if not self.is_prepared or not (bool(self.fitted) or self._guide_is_trained()):
            raise RuntimeError("this AnomalyMixture is not fitted yet; call fit(X) first.")

    def _guide_is_trained(self) -> bool:
        """The guide's parameters exist in Pyro's param store (e.g. after your own SVI loop)."""
        return self.method == "svi" and f"{self.pyro_name}.loc" in pyro.get_param_store()

    def guide_draws(self) -> dict[str, torch.Tensor]:
        """Seeded draws of the guide, site -> ``(S, ...)``: one for a MAP guide, else
        ``num_posterior_draws`` (what :meth:`fit` stores for :meth:`posterior_draws`)."""
        probe = torch.zeros(1, self.config["n_features"], device=self.device)
        samples: dict[str, list[torch.Tensor]] = {}
        with torch.no_grad(), pyro.poutine.seed(rng_seed=self.seed):
            for _ in range(self._num_stored_draws):
                for key, value in self.guide(probe).items():
                    samples.setdefault(key, []).append(value.detach())
        return {key: torch.stack(values) for key, values in samples.items()}

    def posterior_draws(self) -> dict[str, torch.Tensor]:
        """Posterior draws of the global parameters, site -> ``(S, ...)``: the NUTS draws
        (chains flattened, relabelled) or ``num_posterior_draws`` seeded guide draws, stored
        on the model by :meth:`fit`. A model trained by your own SVI loop (``fit`` not called)
        draws from its guide afresh on every call."""
        self._check_fitted()
        if not bool(self.fitted):
            return self.guide_draws()
        return {
            name: getattr(self, f"posterior_{name}")
            for name in SITES
            if hasattr(self, f"posterior_{name}")
        }

    @torch.no_grad()
    def _joints(self, X: Any) -> Iterator[torch.Tensor]:
        """``log p(assignment = k, x | draw)`` ``(N, K + 1)`` for raw ``X``, one per posterior
        draw, in float64."""
        self._check_fitted()
        z = self.standardize(X).double()
        draws = {k: v.double() for k, v in self.posterior_draws().items()}
        for index in range(len(draws["loc"])):
            yield self.joint_log_prob({k: v[index] for k, v in draws.items()}, z)

    def _log_responsibilities(self, X: Any) -> torch.Tensor:
        """``log E_posterior[P(assignment = k | x)]`` for raw ``X``: ``(N, K + 1)``."""
        total, count = None, 0
        for joint in self._joints(X):
            log_resp = joint - joint.logsumexp(-1, keepdim=True)
            total = log_resp if total is None else torch.logaddexp(total, log_resp)
            count += 1
        assert total is not None
        return total - math.log(count)

    def predict_proba(self, X: Any) -> np.ndarray:
        """Posterior responsibilities ``(N, K + 1)``: one column per normal component, the last
        column P(anomaly | x); rows sum to 1 (averaged over the parameters' posterior)."""
        return self._log_responsibilities(X).exp().cpu().numpy()

    def anomaly_proba(self, X: Any) -> np.ndarray:
        """P(anomaly | x) for each row of ``X``: ``(N,)``."""
        return self.predict_proba(X)[:, -1]

    def score_samples(self, X: Any) -> np.ndarray:
        """Normality score ``log P(normal | x) - log P(anomaly | x)`` ``(N,)``: higher is more
        normal (scikit-learn's convention). Computed in log space, so it keeps ranking points
        whose P(anomaly | x) rounds to 0 or 1."""
        log_resp = self._log_responsibilities(X)
        return (log_resp[:, :-1].logsumexp(-1) - log_resp[:, -1]).cpu().numpy()

    @property
    def offset_(self) -> float:
        """``decision_function = score_samples - offset_``: ``log((1 - t) / t)``, the score at
        which P(anomaly | x) equals ``threshold`` t."""
        return math.log((1 - self.threshold) / self.threshold)

    def decision_function(self, X: Any) -> np.ndarray:
        """``(N,)``: negative for points flagged as anomalies (P(anomaly | x) > threshold)."""
        return self.score_samples(X) - self.offset_

    def predict(self, X: Any) -> np.ndarray:
        """``(N,)`` integers: 1 normal, -1 anomaly (P(anomaly | x) > threshold)."""
        return np.where(self.decision_function(X) < 0, -1, 1)

    @property
    def contamination_(self) -> float:
        """Posterior mean of the contamination (anomaly weight)."""
        return float(self.posterior_draws()["contamination"].mean())

    def contamination_interval(self, prob: float = 0.9) -> tuple[float, float]:
        """Central ``prob`` posterior interval of the contamination."""
        prob = check_probability("prob", prob)
        draws = self.posterior_draws()["contamination"].double()
        if self.method == "svi" and self.guide_type == "meanfield" and bool(self.fitted):
            from scipy.stats import beta

            a, b = self.contamination_beta.tolist()  # the guide's own Beta: exact quantiles
            lo, hi = beta.ppf([(1 - prob) / 2, (1 + prob) / 2], a, b)
            return float(lo), float(hi)
        lo, hi = torch.quantile(draws, draws.new_tensor([(1 - prob) / 2, (1 + prob) / 2]))
        return float(lo), float(hi)

    def log_likelihood(self, X: Any) -> np.ndarray:
        """Pointwise ``log p(x_n | draw)`` on standardized features, ``(S, N)``, one row per
        posterior draw (assignments summed out): the input of LOO/WAIC."""
        return torch.stack([joint.logsumexp(-1) for joint in self._joints(X)]).cpu().numpy()

    def to_inference_data(self, X: Any = None) -> Any:
        """ArviZ ``InferenceData``. MCMC: the NUTS run's (relabelled posterior, sample stats,
        pointwise log-likelihood). SVI: the guide's draws as one chain, with the pointwise
        log-likelihood of ``X`` when given."""
        import arviz as az

        self._check_fitted()
        if self.method == "mcmc" and self.result_ is not None:
            return self.result_.inference_data
        draws = {k: v.cpu().numpy()[None] for k, v in self.posterior_draws().items()}
        coords, dims = self.arviz_dims()
        log_lik = None
        observed = None
        if X is not None:
            log_lik = {"obs": self.log_likelihood(X)[None]}
            observed = {"obs": self.standardize(X).cpu().numpy()}
            coords = {**coords, "point": list(range(len(observed["obs"])))}
            dims = {**dims, "obs": ["point", "feature"]}
            dims_ll = {"obs": ["point"]}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # one chain: no R-hat, said plainly
            idata = az.from_dict(
                posterior=draws,
                log_likelihood=log_lik,
                observed_data=observed,
                coords=coords,
                dims={**dims, **(dims_ll if X is not None else {})},
            )
        return idata


# run folders written before the estimator and the model were split name the family so
MODEL_REGISTRY.setdefault("AnomalyMixture", AnomalyMixtureModel)


def _validate_params(config: dict[str, Any]) -> None:
    """Raise ``ValueError``/``TypeError`` naming the first bad hyperparameter."""
    n_components = config["n_components"]
    if isinstance(n_components, bool) or not isinstance(n_components, (int, np.integer)):
        raise TypeError(f"n_components must be an integer >= 1, got {n_components!r}.")
    if n_components < 1:
        raise ValueError(f"n_components must be >= 1, got {n_components}.")
    check_choice("covariance", config["covariance"], COVARIANCES)
    check_choice("method", config["method"], METHODS)
    check_choice("guide_type", config["guide_type"], GUIDES)
    check_choice("backend", config["backend"], BACKENDS)
    if config["backend"] == "numpyro" and config["guide_type"] != "meanfield":
        raise ValueError(
            "backend='numpyro' trains the mean-field guide; use backend='pyro' with "
            f"guide_type={config['guide_type']!r}."
        )
    check_number(
        "contamination", config["contamination"], low=0, high=0.5, low_open=True, high_open=True
    )
    check_probability("threshold", config["threshold"])
    scale = config["anomaly_scale"]
    if isinstance(scale, str) and scale != "auto":
        raise ValueError(f"anomaly_scale must be 'auto' or a positive number, got {scale!r}.")
    if scale != "auto":
        check_positive_number("anomaly_scale", scale)
    for name in ("contamination_strength", "lkj_concentration", "lr"):
        check_positive_number(name, config[name])
    check_non_negative_number("reg_covar", config["reg_covar"])
    for name in (
        "epochs",
        "batch_size",
        "num_warmup",
        "num_samples",
        "num_chains",
        "num_posterior_draws",
    ):
        check_positive_int(name, config[name])
    if config.get("n_features") is not None:
        check_positive_int("n_features", config["n_features"])
