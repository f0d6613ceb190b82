"""bayesvae: Bayesian deep generative models and Bayesian analyses on Pyro.

>>> import bayesvae
>>> data = bayesvae.data.load_digits()
>>> vae = bayesvae.models.VAE(64, latent_dim=2, hidden_dims=(64,))
>>> result = bayesvae.fit(vae, data.x, epochs=1, progress=False)
"""

from __future__ import annotations

import logging

from bayesvae import data, diagnostics, models, report, runs  # noqa: E402
from bayesvae._version import __version__  # noqa: E402
from bayesvae.abtest import (  # noqa: E402
    ABTestResult,
    ABTestSuite,
    abtest,
    abtest_from_rows,
    abtest_metrics,
    abtest_samples,
)
from bayesvae.anomaly import AnomalyMixture, AnomalyRun, detect_anomalies  # noqa: E402
from bayesvae.infer import FitResult, fit  # noqa: E402
from bayesvae.infer.mcmc import MCMCResult, mcmc  # noqa: E402
from bayesvae.models import (  # noqa: E402
    VAE,
    ConditionalVAE,
    GumbelSoftmaxVAE,
    HierarchicalVAE,
    MixturePriorVAE,
    ProdLDA,
)
from bayesvae.models.program import PyroProgram  # noqa: E402
from bayesvae.runs import load  # noqa: E402
from bayesvae.runs import save_model as save  # noqa: E402
from bayesvae.topics import TopicRun, fit_topics  # noqa: E402

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
    "PyroProgram",
    "load",
    "save",
    "VAE",
    "ConditionalVAE",
    "HierarchicalVAE",
    "GumbelSoftmaxVAE",
    "MixturePriorVAE",
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
    "TopicRun",
]
