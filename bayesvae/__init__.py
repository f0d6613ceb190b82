"""bayesvae: Bayesian deep generative models and Bayesian analyses on Pyro.

>>> import bayesvae
>>> data = bayesvae.data.load_digits()
>>> vae = bayesvae.models.VAE(64, latent_dim=2, hidden_dims=(64,))
>>> result = bayesvae.fit(vae, data.x, epochs=1, progress=False)

Every name below loads on first use (see :mod:`bayesvae._lazy`): ``import bayesvae`` imports
neither torch nor Pyro, JAX, ArviZ, scikit-learn, matplotlib or Jinja2, and the exact A/B test
needs numpy and scipy only. (``abtest`` is imported up front: it is both a function here and a
module, and the function must win.)
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from bayesvae._lazy import lazy_exports
from bayesvae._version import __version__
from bayesvae.abtest import (
    ABTestResult,
    ABTestSuite,
    abtest,
    abtest_from_rows,
    abtest_metrics,
    abtest_samples,
)

_EXPORTS = {
    **{name: f"bayesvae.{name}" for name in ("data", "diagnostics", "models", "report", "runs")},
    "fit": "bayesvae.infer.svi:fit",
    "FitResult": "bayesvae.infer.svi:FitResult",
    "mcmc": "bayesvae.infer.mcmc:mcmc",
    "enable_compilation_cache": "bayesvae.backends.compilation_cache:enable_compilation_cache",
    "MCMCResult": "bayesvae.infer.mcmc:MCMCResult",
    "PyroProgram": "bayesvae.models.program:PyroProgram",
    "load": "bayesvae.runs.folder:load",
    "save": "bayesvae.runs.folder:save_model",
    "VAE": "bayesvae.models.vae:VAE",
    "AdversarialVAE": "bayesvae.models.avb:AdversarialVAE",
    "ConditionalVAE": "bayesvae.models.cvae:ConditionalVAE",
    "HierarchicalVAE": "bayesvae.models.hvae:HierarchicalVAE",
    "GumbelSoftmaxVAE": "bayesvae.models.gumbel_vae:GumbelSoftmaxVAE",
    "MixturePriorVAE": "bayesvae.models.mixture_vae:MixturePriorVAE",
    "SemiSupervisedVAE": "bayesvae.models.ssvae:SemiSupervisedVAE",
    "SentenceVAE": "bayesvae.models.sentence_vae:SentenceVAE",
    "ProdLDA": "bayesvae.models.prodlda:ProdLDA",
    "AnomalyMixture": "bayesvae.anomaly:AnomalyMixture",
    "detect_anomalies": "bayesvae.anomaly:detect_anomalies",
    "AnomalyRun": "bayesvae.anomaly:AnomalyRun",
    "fit_topics": "bayesvae.topics:fit_topics",
    "fit_text_vae": "bayesvae.text_vae:fit_text_vae",
    "write_vae_run": "bayesvae.vae_run:write_vae_run",
    "TopicRun": "bayesvae.topics:TopicRun",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = [
    "__version__",
    "data",
    "diagnostics",
    "models",
    "report",
    "runs",
    "fit",
    "FitResult",
    "mcmc",
    "MCMCResult",
    "enable_compilation_cache",
    "PyroProgram",
    "load",
    "save",
    "VAE",
    "AdversarialVAE",
    "ConditionalVAE",
    "HierarchicalVAE",
    "GumbelSoftmaxVAE",
    "MixturePriorVAE",
    "SemiSupervisedVAE",
    "SentenceVAE",
    "abtest",
    "abtest_from_rows",
    "abtest_metrics",
    "abtest_samples",
    "ABTestSuite",
    "ABTestResult",
    "AnomalyMixture",
    "detect_anomalies",
    "AnomalyRun",
    "ProdLDA",
    "fit_topics",
    "fit_text_vae",
    "write_vae_run",
    "TopicRun",
]

if TYPE_CHECKING:
    from bayesvae import data, diagnostics, models, report, runs
    from bayesvae.anomaly import AnomalyMixture, AnomalyRun, detect_anomalies
    from bayesvae.infer.mcmc import MCMCResult, mcmc
    from bayesvae.infer.svi import FitResult, fit
    from bayesvae.models import (
        VAE,
        AdversarialVAE,
        ConditionalVAE,
        GumbelSoftmaxVAE,
        HierarchicalVAE,
        MixturePriorVAE,
        ProdLDA,
        SemiSupervisedVAE,
        SentenceVAE,
    )
    from bayesvae.models.program import PyroProgram
    from bayesvae.runs import load
    from bayesvae.runs import save_model as save
    from bayesvae.text_vae import fit_text_vae
    from bayesvae.topics import TopicRun, fit_topics
    from bayesvae.vae_run import write_vae_run
