"""The contract between bayesvae's fit loop (and MCMC, diagnostics, reports) and a model.

Written down once, here. A model is anything with Pyro ``model(*args, **kwargs)`` and
``guide(*args, **kwargs)`` callables (:class:`PyroProgramLike`). What it may declare beyond them
is the set of optional hooks of :class:`ModelContract`, each with its default below; the loop and
the diagnostics read only these (never an undeclared attribute). A built-in family inherits
:class:`ModelContract` through :class:`~bayesvae.models.base.PyroModel` and overrides the hooks
it needs; a user's plain Pyro function is wrapped in a
:class:`~bayesvae.models.program.PyroProgram`, which is a :class:`ModelContract` too. A family's
NumPyro twins are not hooks: :mod:`bayesvae.backends.numpyro` finds them by ``family``.

An A/B family's torch-free half (its spec in :mod:`bayesvae.models.ab_conjugate`) is a
:class:`ModelContract` without ``model``/``guide``: it names its family, validates data into
NumPy arrays and gives its dims, so NumPyro NUTS samples it through the family's twin without
importing torch or Pyro. Everything that runs Pyro (SVI, Pyro NUTS) needs the whole family.
This module imports neither.

=============================  =================  ==============================================
hook                           default            meaning
=============================  =================  ==============================================
``family``                     ``None``           save name of a registered family (``None``: the
                                                  run folder records the program instead)
``takes_num_data``             ``True``           the loop passes ``num_data=N`` (families scale
                                                  minibatches themselves); ``False``: the program
                                                  gets its own arguments, full data every step
``max_plate_nesting``          ``None``           deepest ``pyro.plate`` nesting (``None``: Pyro
                                                  finds it)
``local_plate``                ``None``           plate of amortized per-data-point latents (per
                                                  point PSIS k̂)
``continuous_latent``          ``False``          a Gaussian latent the latent-space tools explore
``guide_has_density``          ``True``           the guide's log density is exact (``False``: an
                                                  implicit guide; PSIS and bound sandwiches do
                                                  not apply)
``default_elbo``               ``"trace"``        objective when ``fit(elbo=None)``
``supported_elbos``            ``None``           objectives the model allows (``None``: any)
``supported_elbos_reason``     a sentence         why others are refused
``nuts_target_accept_prob``    ``0.8``            NUTS step-size target
``nuts_dense_mass``            ``False``          NUTS mass matrix when ``mcmc(dense_mass=None)``:
                                                  ``False`` diagonal, ``True`` dense, ``"laplace"``
                                                  the inverse Hessian at the mode, held fixed
                                                  (NumPyro; diagonal on Pyro)
``nuts_float64``               ``False``          NumPyro NUTS runs in 64-bit (a log density
                                                  summed over many rows is too large for 32-bit
                                                  floats to resolve NUTS's energy differences)
``check_data(*data)``          ``as_tensor``      validate data, return the arrays the model
                                                  takes (tensors for a Pyro program); raise
                                                  ``ValueError``/``TypeError`` naming the argument
``nuts_init_values()``         ``None``           site -> value where every chain starts
``postprocess_posterior(id)``  identity           e.g. relabel mixture components
``arviz_dims()``               ``({}, {})``       ``(coords, dims)`` for named ArviZ dimensions
=============================  =================  ==============================================
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

if TYPE_CHECKING:
    import torch

__all__ = ["PyroProgramLike", "ModelContract", "DEFAULT_SUPPORTED_REASON"]

DEFAULT_SUPPORTED_REASON = "other objectives do not fit this model."


@runtime_checkable
class PyroProgramLike(Protocol):
    """The required part: a Pyro model and a guide taking the same arguments."""

    def model(self, *args: Any, **kwargs: Any) -> Any: ...

    def guide(self, *args: Any, **kwargs: Any) -> Any: ...


class ModelContract:
    """The optional hooks of a model and their defaults (see the module docstring's table).

    Subclasses override class attributes or methods; nothing else is read by the fit loop.
    """

    family: ClassVar[str | None] = None
    takes_num_data: ClassVar[bool] = True
    max_plate_nesting: ClassVar[int | None] = None
    local_plate: ClassVar[str | None] = None
    continuous_latent: ClassVar[bool] = False
    guide_has_density: ClassVar[bool] = True
    default_elbo: ClassVar[str] = "trace"
    supported_elbos: ClassVar[tuple[str, ...] | None] = None
    supported_elbos_reason: ClassVar[str] = DEFAULT_SUPPORTED_REASON
    nuts_target_accept_prob: float = 0.8
    nuts_dense_mass: ClassVar[bool | str] = False
    nuts_float64: ClassVar[bool] = False

    def check_data(self, *data: Any) -> tuple[torch.Tensor, ...]:
        """Validate data and return it as tensors (a torch-free spec: NumPy arrays); raise
        ``ValueError``/``TypeError`` naming the argument on bad input."""
        import torch  # here, not above: the contract is imported where torch is not

        return tuple(torch.as_tensor(d) for d in data)

    def nuts_init_values(self) -> dict[str, Any] | None:
        """Site name -> constrained value where every NUTS chain starts, or ``None``."""
        return None

    def postprocess_posterior(self, idata: Any) -> Any:
        """Applied to an MCMC ``InferenceData`` before any diagnostic (default: unchanged)."""
        return idata

    def arviz_dims(self) -> tuple[dict[str, Any], dict[str, list[str]]]:
        """``(coords, dims)`` naming ArviZ dimensions (default: none)."""
        return {}, {}
