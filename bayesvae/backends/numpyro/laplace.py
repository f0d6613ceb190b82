"""A Laplace start for NumPyro NUTS: the posterior mode (L-BFGS on the potential energy in the
unconstrained space), the inverse Hessian there as a dense inverse mass matrix, and chain starts
drawn from that Gaussian.

NUTS adapts its mass matrix from the warm-up draws, regularized towards a small multiple of the
identity. A posterior conditioned on many rows is nearly Gaussian but very concentrated and
correlated (a mixture's covariance on 50,000 rows: standard deviations down to 1e-3, condition
number near 1e6): the identity-scaled start and the regularization then dominate, and every draw
needs hundreds of leapfrog steps. The inverse Hessian at the mode is what adaptation is trying to
estimate, available after one optimisation; with it fixed, a draw takes a handful of steps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree
from numpyro.infer.util import initialize_model, potential_energy
from scipy.optimize import minimize

__all__ = ["LaplaceError", "LaplaceStart", "laplace_start"]


@dataclass(frozen=True)
class LaplaceStart:
    """``inverse_mass_matrix`` ``(P, P)`` over the flattened unconstrained sites (NumPyro's
    order), ``init_params`` the unconstrained chain starts (a leading chain dim when more than
    one chain), ``mode`` the unconstrained mode, ``optimizer_steps`` L-BFGS iterations."""

    inverse_mass_matrix: np.ndarray
    init_params: dict[str, Any]
    mode: dict[str, Any]
    optimizer_steps: int


class LaplaceError(RuntimeError):
    """The mode or the Hessian there is unusable (not finite, or not positive definite)."""


def laplace_start(
    model: Any,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    *,
    init_strategy: Any,
    rng_key: Any,
    num_chains: int,
    max_iterations: int = 5000,
) -> LaplaceStart:
    """Find the mode of ``model(*args, **kwargs)``'s posterior from ``init_strategy``'s point
    and the Laplace approximation there. Raises :class:`LaplaceError` when the optimisation does
    not reach a finite point or the Hessian is not positive definite."""
    init_key, draw_key = jax.random.split(rng_key)

    @jax.jit
    def initial_point(key: Any) -> dict[str, Any]:
        # traced, NumPyro's search for valid initial values is one compiled program; run
        # eagerly it goes op by op, each primitive compiled on its own (seconds on a CPU)
        info = initialize_model(
            key, model, init_strategy=init_strategy, model_args=args, model_kwargs=kwargs
        )
        return info.param_info.z

    flat, unravel = ravel_pytree(initial_point(init_key))
    dtype = flat.dtype

    def potential(vector: Any) -> Any:
        return potential_energy(model, args, kwargs, unravel(vector))

    value_and_grad = jax.jit(jax.value_and_grad(potential))

    def objective(vector: np.ndarray) -> tuple[float, np.ndarray]:
        value, grad = value_and_grad(jnp.asarray(vector, dtype=dtype))
        return float(value), np.asarray(grad, dtype=np.float64)

    found = minimize(
        objective,
        np.asarray(flat, dtype=np.float64),
        jac=True,
        method="L-BFGS-B",
        options={"maxiter": max_iterations},
    )
    if not np.isfinite(found.fun) or not np.all(np.isfinite(found.x)):
        raise LaplaceError("the search for the posterior mode ended at a non-finite point.")
    mode = jnp.asarray(found.x, dtype=dtype)
    hessian = np.asarray(jax.jit(jax.hessian(potential))(mode), dtype=np.float64)
    hessian = (hessian + hessian.T) / 2
    if not np.all(np.isfinite(hessian)):
        raise LaplaceError("the Hessian at the posterior mode is not finite.")
    eigenvalues, eigenvectors = np.linalg.eigh(hessian)
    if eigenvalues[0] <= 0:
        raise LaplaceError(
            f"the Hessian at the posterior mode is not positive definite (smallest eigenvalue "
            f"{eigenvalues[0]:.3g})."
        )
    inverse = (eigenvectors / eigenvalues) @ eigenvectors.T
    inverse = (inverse + inverse.T) / 2
    # chain starts: independent draws of N(mode, inverse), through the eigen-decomposition
    noise = np.asarray(jax.random.normal(draw_key, (num_chains, flat.shape[0])), np.float64)
    starts = np.asarray(found.x) + (noise / np.sqrt(eigenvalues)) @ eigenvectors.T
    draws = [unravel(jnp.asarray(start, dtype=dtype)) for start in starts]
    init_params = (
        draws[0]
        if num_chains == 1
        else jax.tree_util.tree_map(lambda *leaves: jnp.stack(leaves), *draws)
    )
    return LaplaceStart(
        inverse_mass_matrix=inverse,
        init_params=init_params,
        mode=unravel(mode),
        optimizer_steps=int(found.nit),
    )
