"""NumPyro twins of bayesvae's Pyro models, found by family: :func:`svi_twin` (trained by
``bayesvae.fit(..., backend="numpyro")``) and :func:`nuts_model` (sampled by
``bayesvae.mcmc(..., backend="numpyro")``). Models never import this package; the fit loop and
MCMC look their twins up here. Importing it needs jax and numpyro."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bayesvae.backends.numpyro.loop import SVITwin

try:
    import numpyro  # noqa: F401
except ImportError as error:  # pragma: no cover - exercised only without the dependency
    raise ImportError(
        "the NumPyro backend needs jax and numpyro: pip install 'numpyro>=0.15' jax"
    ) from error

__all__ = ["svi_twin", "nuts_model", "SVI_TWINS", "NUTS_MODELS"]


def _vae_twin(model: Any) -> Any:
    from bayesvae.backends.numpyro.vae import NumPyroVAE

    return NumPyroVAE(model)


def _hvae_twin(model: Any) -> Any:
    from bayesvae.backends.numpyro.hvae import NumPyroHierarchicalVAE

    return NumPyroHierarchicalVAE(model)


def _prodlda_twin(model: Any) -> Any:
    from bayesvae.backends.numpyro.prodlda import NumPyroProdLDA

    return NumPyroProdLDA(**model.config)


def _abtest_model(model: Any) -> Any:
    from functools import partial

    from bayesvae.backends.numpyro.abtest import beta_binomial_model

    return partial(beta_binomial_model, prior=model.prior, hierarchical=model.hierarchical)


def _metric_model(model: Any) -> Any:
    from functools import partial

    from bayesvae.backends.numpyro import abtest

    function = {
        "GammaPoissonABTest": abtest.gamma_poisson_model,
        "NegativeBinomialABTest": partial(abtest.negative_binomial_model, num_arms=len(model.arms)),
        "NormalABTest": abtest.normal_model,
        "RevenueABTest": abtest.revenue_model,
    }[model.family]
    return partial(function, prior=model.prior)


def _anomaly_twin(model: Any) -> Any:
    from bayesvae.backends.numpyro.anomaly import NumPyroAnomalyMixture

    return NumPyroAnomalyMixture(model)


def _anomaly_model(model: Any) -> Any:
    from bayesvae.backends.numpyro.anomaly import twin_of

    return twin_of(model)


#: family -> builder of its NumPyro SVI twin (the same configuration and, for the VAE, weights)
SVI_TWINS: dict[str, Callable[[Any], SVITwin]] = {
    "VAE": _vae_twin,
    "HierarchicalVAE": _hvae_twin,
    "ProdLDA": _prodlda_twin,
    "AnomalyMixtureModel": _anomaly_twin,
}
#: family -> builder of its NumPyro model callable for NUTS
NUTS_MODELS: dict[str, Callable[[Any], Any]] = {
    "BetaBinomialABTest": _abtest_model,
    "GammaPoissonABTest": _metric_model,
    "NegativeBinomialABTest": _metric_model,
    "NormalABTest": _metric_model,
    "RevenueABTest": _metric_model,
    "AnomalyMixtureModel": _anomaly_model,
}


def svi_twin(model: Any) -> SVITwin | None:
    """The NumPyro SVI twin of ``model``'s family, or ``None`` when it has none (subclasses such
    as the conditional VAE are families of their own, without one)."""
    builder = SVI_TWINS.get(model.family)
    return None if builder is None else builder(model)


def nuts_model(model: Any) -> Any | None:
    """The NumPyro model of ``model``'s family with its configuration, or ``None``."""
    builder = NUTS_MODELS.get(model.family)
    return None if builder is None else builder(model)
