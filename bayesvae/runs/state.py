"""A model's state as tensors and plain values: its module ``state_dict`` and its entries of
Pyro's param store, with each parameter's constraint stored by name (``"positive"``,
``{"name": "interval", ...}``) so the state loads with ``weights_only=True``."""

from __future__ import annotations

from typing import Any

import pyro
import torch

from bayesvae.models.program import param_sites
from bayesvae.runs.files import UnsafeFileError

__all__ = [
    "constraint_spec",
    "constraint_from_spec",
    "model_state",
    "load_model_state",
    "program_param_names",
    "plain_value",
]


def constraint_spec(constraint: Any, name: str) -> dict[str, Any]:
    """A Pyro/torch constraint as plain values: ``{"name": "positive"}``,
    ``{"name": "interval", "lower_bound": 0.0, "upper_bound": 1.0}``, ..."""
    from pyro.distributions import constraints

    for key in _SINGLETON_CONSTRAINTS:
        if constraint is getattr(constraints, key):
            return {"name": key}
    for key, attributes in _PARAMETERIZED_CONSTRAINTS.items():
        cls = type(getattr(constraints, key)(*([0.0] * len(attributes))))
        if type(constraint) is cls:
            values = {}
            for attribute in attributes:
                value = getattr(constraint, attribute)
                values[attribute] = (
                    value.detach().cpu() if isinstance(value, torch.Tensor) else float(value)
                )
            return {"name": key, **values}
    raise ValueError(
        f"parameter {name!r} has constraint {constraint!r}, which a run folder cannot record; "
        f"supported: {sorted(_SINGLETON_CONSTRAINTS) + sorted(_PARAMETERIZED_CONSTRAINTS)}."
    )


def constraint_from_spec(spec: dict[str, Any]) -> Any:
    from pyro.distributions import constraints

    name = spec.get("name")
    if name in _SINGLETON_CONSTRAINTS:
        return getattr(constraints, name)
    if name in _PARAMETERIZED_CONSTRAINTS:
        return getattr(constraints, name)(
            *(spec[attribute] for attribute in _PARAMETERIZED_CONSTRAINTS[name])
        )
    raise UnsafeFileError(f"unknown parameter constraint {spec!r} in a saved model state.")


_SINGLETON_CONSTRAINTS = (
    "real",
    "real_vector",
    "positive",
    "nonnegative",
    "unit_interval",
    "simplex",
    "lower_cholesky",
    "corr_cholesky",
    "positive_definite",
    "positive_semidefinite",
    "lower_triangular",
    "ordered_vector",
    "positive_ordered_vector",
    "softplus_positive",
    "softplus_lower_cholesky",
    "unit_lower_cholesky",
    "sphere",
    "boolean",
    "nonnegative_integer",
    "positive_integer",
)
_PARAMETERIZED_CONSTRAINTS = {
    "interval": ("lower_bound", "upper_bound"),
    "half_open_interval": ("lower_bound", "upper_bound"),
    "greater_than": ("lower_bound",),
    "greater_than_eq": ("lower_bound",),
    "less_than": ("upper_bound",),
}


def model_state(model: Any) -> dict[str, Any]:
    """The model's module state and its own (non-module) entries of Pyro's param store."""
    module_params = {id(p) for p in model.parameters()}
    store = pyro.get_param_store()
    prefix = model.pyro_name + "."
    params = {}
    for name in store.keys():
        if name.startswith(prefix):
            unconstrained = store._params[name]
            if id(unconstrained) not in module_params:
                short = name[len(prefix) :]
                params[short] = (
                    store[name].detach().cpu(),
                    constraint_spec(store._constraints[name], name),
                )
    return {
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "param_store": {k: v[0] for k, v in params.items()},
        "param_constraints": {k: v[1] for k, v in params.items()},
    }


def load_model_state(model: Any, state: dict[str, Any]) -> None:
    """Inverse of :func:`model_state`: load into ``model`` (on its device) and the param store."""
    model.load_state_dict(state["state_dict"])
    store = pyro.get_param_store()
    device = model.device
    for name, value in state["param_store"].items():
        full = f"{model.pyro_name}.{name}"
        if full in store:
            del store[full]
        constraint = constraint_from_spec(state["param_constraints"][name])
        pyro.param(full, value.to(device), constraint=constraint)


def program_param_names(program: Any, args: tuple, kwargs: dict) -> list[str]:
    """Names of the param-store entries a program's guide and model use (AutoGuide parameters,
    a user guide's ``pyro.param``s, modules registered with ``pyro.module``)."""
    return list(param_sites(program.model, program.guide, args, kwargs))


def plain_value(value: Any, name: str) -> Any:
    """A program argument as something ``weights_only`` loading reads: tensors (on the CPU),
    numbers, strings, ``None``, and lists/dicts of them."""
    if torch.is_tensor(value):
        return value.detach().cpu()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [plain_value(v, name) for v in value]
    raise ValueError(
        f"argument {name!r} of the program is a {type(value).__name__}; a run folder records "
        "tensors, arrays, numbers, strings and lists of them."
    )
