"""A linear-Gaussian test model whose marginal likelihood and Rényi divergences are exact:
``z_n ~ N(0, 1)``, ``x_n | z_n ~ N(z_n, SIGMA^2)``, so ``p(x_n) = N(0, 1 + SIGMA^2)``, with a
slightly wrong Gaussian guide (the posterior mean shifted by ``shift``, its sd widened by
``widen``). Shared by the bound, objective and sandwich tests."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pyro
import pyro.distributions as dist
import torch

SIGMA = 0.8  # observation noise
POST_VAR = SIGMA**2 / (1 + SIGMA**2)  # posterior variance of z given one x


def model(x: torch.Tensor) -> None:
    with pyro.plate("data", x.shape[0]):
        z = pyro.sample("z", dist.Normal(0.0, 1.0))
        pyro.sample("x", dist.Normal(z, SIGMA), obs=x)


def make_guide(shift: float, widen: float) -> Callable[[torch.Tensor], None]:
    """q(z_n | x_n) = N(posterior mean + shift, (widen * posterior sd)^2)."""

    def guide(x: torch.Tensor) -> None:
        with pyro.plate("data", x.shape[0]):
            loc = x / (1 + SIGMA**2) + shift
            pyro.sample("z", dist.Normal(loc, widen * math.sqrt(POST_VAR)))

    return guide


def exact_log_px(x: torch.Tensor) -> np.ndarray:
    """log p(x_n) per point, ``(N,)``."""
    return dist.Normal(0.0, math.sqrt(1 + SIGMA**2)).log_prob(x).numpy()


def renyi_divergence(alpha: float, shift: float, widen: float) -> float:
    """D_alpha(q(z_n | x_n) || p(z_n | x_n)) in closed form, the same for every point; alpha = 1
    is KL(q || p), and log p(x_n) - D_{-1} is the CUBO."""
    q_var = widen**2 * POST_VAR
    if alpha == 1.0:
        return 0.5 * (math.log(POST_VAR / q_var) + q_var / POST_VAR - 1 + shift**2 / POST_VAR)
    mixed = alpha * POST_VAR + (1 - alpha) * q_var
    divergence = 0.5 * math.log(POST_VAR / q_var) + math.log(POST_VAR / mixed) / (2 * (alpha - 1))
    return divergence + alpha * shift**2 / (2 * mixed)
