"""Model families: each a Pyro model/guide pair on a :class:`~bayesvae.models.base.PyroModel`."""

from bayesvae.models.ab_metrics import (
    GammaPoissonABTest,
    NegativeBinomialABTest,
    NormalABTest,
    RevenueABTest,
)
from bayesvae.models.abtest import BetaBinomialABTest
from bayesvae.models.anomaly import AnomalyMixtureModel
from bayesvae.models.base import MODEL_REGISTRY, PyroModel, get_model_class
from bayesvae.models.cvae import ConditionalVAE
from bayesvae.models.gumbel_vae import GumbelSoftmaxVAE
from bayesvae.models.hvae import HierarchicalVAE
from bayesvae.models.mixture_vae import MixturePriorVAE
from bayesvae.models.prodlda import ProdLDA
from bayesvae.models.vae import VAE

__all__ = [
    "AnomalyMixtureModel",
    "BetaBinomialABTest",
    "ConditionalVAE",
    "GammaPoissonABTest",
    "NegativeBinomialABTest",
    "NormalABTest",
    "RevenueABTest",
    "GumbelSoftmaxVAE",
    "HierarchicalVAE",
    "MixturePriorVAE",
    "MODEL_REGISTRY",
    "PyroModel",
    "get_model_class",
    "ProdLDA",
    "VAE",
]
