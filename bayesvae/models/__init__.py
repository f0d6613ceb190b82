"""Model families: each a Pyro model/guide pair on a :class:`~bayesvae.models.base.PyroModel`.

Names load on first use (see :mod:`bayesvae._lazy`): the torch-free half of the A/B families,
:mod:`bayesvae.models.ab_conjugate`, imports neither torch nor Pyro. ``MODEL_REGISTRY`` loads
every built-in family first, so it always lists them all.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from bayesvae._lazy import lazy_exports

#: the modules that define the built-in families (importing one registers its classes)
FAMILY_MODULES = (
    "bayesvae.models.abtest",
    "bayesvae.models.ab_metrics",
    "bayesvae.models.anomaly",
    "bayesvae.models.avb",
    "bayesvae.models.cvae",
    "bayesvae.models.gumbel_vae",
    "bayesvae.models.hvae",
    "bayesvae.models.mixture_vae",
    "bayesvae.models.prodlda",
    "bayesvae.models.sentence_vae",
    "bayesvae.models.ssvae",
    "bayesvae.models.vae",
)
_EXPORTS = {
    "AnomalyMixtureModel": "bayesvae.models.anomaly:AnomalyMixtureModel",
    "BetaBinomialABTest": "bayesvae.models.abtest:BetaBinomialABTest",
    "AdversarialVAE": "bayesvae.models.avb:AdversarialVAE",
    "ConditionalVAE": "bayesvae.models.cvae:ConditionalVAE",
    "GammaPoissonABTest": "bayesvae.models.ab_metrics:GammaPoissonABTest",
    "NegativeBinomialABTest": "bayesvae.models.ab_metrics:NegativeBinomialABTest",
    "NormalABTest": "bayesvae.models.ab_metrics:NormalABTest",
    "RevenueABTest": "bayesvae.models.ab_metrics:RevenueABTest",
    "GumbelSoftmaxVAE": "bayesvae.models.gumbel_vae:GumbelSoftmaxVAE",
    "HierarchicalVAE": "bayesvae.models.hvae:HierarchicalVAE",
    "MixturePriorVAE": "bayesvae.models.mixture_vae:MixturePriorVAE",
    "SemiSupervisedVAE": "bayesvae.models.ssvae:SemiSupervisedVAE",
    "SentenceVAE": "bayesvae.models.sentence_vae:SentenceVAE",
    "PyroModel": "bayesvae.models.base:PyroModel",
    "get_model_class": "bayesvae.models.base:get_model_class",
    "ProdLDA": "bayesvae.models.prodlda:ProdLDA",
    "VAE": "bayesvae.models.vae:VAE",
}
__all__ = [
    "AnomalyMixtureModel",
    "BetaBinomialABTest",
    "AdversarialVAE",
    "ConditionalVAE",
    "GammaPoissonABTest",
    "NegativeBinomialABTest",
    "NormalABTest",
    "RevenueABTest",
    "GumbelSoftmaxVAE",
    "HierarchicalVAE",
    "MixturePriorVAE",
    "SemiSupervisedVAE",
    "SentenceVAE",
    "MODEL_REGISTRY",
    "PyroModel",
    "get_model_class",
    "ProdLDA",
    "VAE",
    "load_families",
]
_lazy_getattr, __dir__ = lazy_exports(__name__, _EXPORTS)


def load_families() -> None:
    """Import every built-in family, so that each is registered in ``MODEL_REGISTRY``."""
    for module in FAMILY_MODULES:
        importlib.import_module(module)


def __getattr__(name: str) -> Any:
    if name == "MODEL_REGISTRY":
        load_families()
        from bayesvae.models.base import MODEL_REGISTRY

        globals()["MODEL_REGISTRY"] = MODEL_REGISTRY
        return MODEL_REGISTRY
    return _lazy_getattr(name)


if TYPE_CHECKING:
    from bayesvae.models.ab_metrics import (
        GammaPoissonABTest,
        NegativeBinomialABTest,
        NormalABTest,
        RevenueABTest,
    )
    from bayesvae.models.abtest import BetaBinomialABTest
    from bayesvae.models.anomaly import AnomalyMixtureModel
    from bayesvae.models.avb import AdversarialVAE
    from bayesvae.models.base import MODEL_REGISTRY, PyroModel, get_model_class
    from bayesvae.models.cvae import ConditionalVAE
    from bayesvae.models.gumbel_vae import GumbelSoftmaxVAE
    from bayesvae.models.hvae import HierarchicalVAE
    from bayesvae.models.mixture_vae import MixturePriorVAE
    from bayesvae.models.prodlda import ProdLDA
    from bayesvae.models.sentence_vae import SentenceVAE
    from bayesvae.models.ssvae import SemiSupervisedVAE
    from bayesvae.models.vae import VAE
