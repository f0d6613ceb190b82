"""Run folders and checkpoints, written atomically (temp file in the same folder, then rename).

A run folder holds ``config.yaml`` (what rebuilds the model), ``model.pt`` (module state and the
model's entries of Pyro's param store) and ``metrics.csv`` (history), plus whatever the caller adds.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import pyro
import torch
import yaml

__all__ = [
    "atomic_write",
    "atomic_path",
    "write_text",
    "save_model",
    "load",
    "read_config",
    "model_state",
    "load_model_state",
    "save_checkpoint",
    "load_checkpoint",
    "safe_torch_load",
    "save_program",
    "UnsafeFileError",
]

CONFIG_FILE, MODEL_FILE, METRICS_FILE = "config.yaml", "model.pt", "metrics.csv"
#: 2: parameter constraints stored as names (loadable with ``weights_only=True``); 1: pickled
_FORMAT = 2


class UnsafeFileError(ValueError):
    """A run folder's or checkpoint's file holds something other than tensors and plain values
    (e.g. a pickled object that would run code on load); it was refused, not loaded."""


def _constraint_spec(constraint: Any, name: str) -> dict[str, Any]:
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


def _constraint_from_spec(spec: dict[str, Any]) -> Any:
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


def safe_torch_load(path: str | os.PathLike[str], *, device: str | torch.device = "cpu") -> Any:
    """``torch.load(path, weights_only=True)``: tensors and plain values only, never an
    arbitrary pickled object; anything else raises :class:`UnsafeFileError` naming the file."""
    import pickle

    path = Path(path)
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except pickle.UnpicklingError as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise UnsafeFileError(
            f"{path} holds objects other than tensors and plain values and was not loaded "
            f"(bayesvae never unpickles arbitrary objects): {first}"
        ) from None
    except (RuntimeError, EOFError, OSError) as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ValueError(f"{path} is not a readable bayesvae file: {first}") from None


def atomic_write(path: str | os.PathLike[str], write: Callable[[IO[bytes]], Any]) -> Path:
    """Call ``write(handle)`` on a temporary file beside ``path``, then rename it onto ``path``.

    A crash midway leaves any earlier ``path`` untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` for a writer that wants a file name (e.g. netCDF);
    it is renamed onto ``path`` when the block ends without an error, else removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write(path, lambda handle: handle.write(text.encode("utf-8")))


def _write_torch(path: Path, obj: Any) -> Path:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return atomic_write(path, lambda handle: handle.write(buffer.getvalue()))


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
                    _constraint_spec(store._constraints[name], name),
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
        constraint = _constraint_from_spec(state["param_constraints"][name])
        pyro.param(full, value.to(device), constraint=constraint)


def save_model(
    model: Any,
    path: str | os.PathLike[str],
    *,
    history: Any = None,
    fit_config: dict[str, Any] | None = None,
) -> Path:
    """Write a run folder for ``model`` at ``path``: config.yaml, model.pt and (with ``history``,
    a DataFrame or list of rows) metrics.csv. Returns the folder."""
    from bayesvae._version import __version__, runtime_versions

    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"path {folder} exists and is not a folder.")
    folder.mkdir(parents=True, exist_ok=True)
    config = {
        "bayesvae_version": __version__,
        "family": model.family,
        "model": model.config,
        "versions": runtime_versions(),  # what the run was trained with (the report shows it)
    }
    if fit_config:
        config["fit"] = fit_config
    _write_torch(folder / MODEL_FILE, {"format": _FORMAT, **model_state(model)})
    if history is not None:
        import pandas as pd

        frame = history if isinstance(history, pd.DataFrame) else pd.DataFrame(list(history))
        write_text(folder / METRICS_FILE, frame.to_csv(index=False))
    write_text(folder / CONFIG_FILE, yaml.safe_dump(config, sort_keys=False))
    return folder


def read_config(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The parsed ``config.yaml`` of a run folder: a mapping that names its ``family``
    (``ValueError`` naming the file when it is not valid YAML or not such a mapping)."""
    config_path = Path(path) / CONFIG_FILE
    if not config_path.is_file():
        raise FileNotFoundError(f"{path} is not a bayesvae run folder: {config_path} is missing.")
    try:
        config = yaml.safe_load(config_path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ValueError(f"{config_path} is not valid YAML: {first}") from None
    if not isinstance(config, dict) or not isinstance(config.get("family"), str):
        raise ValueError(f"{config_path} is not a run configuration: it names no family.")
    if not isinstance(config.get("model"), dict):
        raise ValueError(f"{config_path} has no 'model:' settings to rebuild the model from.")
    return config


PROGRAM_FAMILY, DATA_FILE = "PyroProgram", "data.pt"


def _program_param_names(program: Any, args: tuple, kwargs: dict) -> list[str]:
    """Names of the param-store entries a program's guide and model use (AutoGuide parameters,
    a user guide's ``pyro.param``s, modules registered with ``pyro.module``)."""
    with torch.no_grad(), pyro.poutine.trace(param_only=True) as capture:
        guide_trace = pyro.poutine.trace(program.guide).get_trace(*args, **kwargs)
        pyro.poutine.replay(program.model, trace=guide_trace)(*args, **kwargs)
    return list(dict.fromkeys(capture.trace.nodes))


def _plain(value: Any, name: str) -> Any:
    """A program argument as something ``weights_only`` loading reads: tensors (on the CPU),
    numbers, strings, ``None``, and lists/dicts of them."""
    if torch.is_tensor(value):
        return value.detach().cpu()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v, name) for v in value]
    raise ValueError(
        f"argument {name!r} of the program is a {type(value).__name__}; a run folder records "
        "tensors, arrays, numbers, strings and lists of them."
    )


def save_program(
    program: Any,
    data: tuple[tuple[Any, ...], dict[str, Any]],
    path: str | os.PathLike[str],
    *,
    history: Any = None,
    fit_config: dict[str, Any] | None = None,
) -> Path:
    """Write a run folder for a fitted :class:`~bayesvae.models.program.PyroProgram`: config.yaml
    (the program's name, guide and source), model.pt (its parameters, constraints by name),
    data.pt (the arguments it was fitted on, so ``load`` can build a lazy AutoGuide again) and
    metrics.csv. Load it with ``bayesvae.load(path, model=the_function)``."""
    import inspect

    from bayesvae._version import __version__

    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"path {folder} exists and is not a folder.")
    folder.mkdir(parents=True, exist_ok=True)
    args, kwargs = data
    store = pyro.get_param_store()
    prefix = program.pyro_name + "."
    params, constraints, prefixed = {}, {}, {}
    for name in _program_param_names(program, args, kwargs):
        own = name.startswith(prefix)
        key = name[len(prefix) :] if own else name
        params[key] = store[name].detach().cpu()
        constraints[key] = _constraint_spec(store._constraints[name], name)
        prefixed[key] = own
    try:
        source = inspect.getsource(program.model_fn)
    except (OSError, TypeError):
        source = None
    from bayesvae._version import runtime_versions

    config = {
        "bayesvae_version": __version__,
        "family": PROGRAM_FAMILY,
        "model": dict(program.config),
        "program": {"source": source},
        "versions": runtime_versions(),
    }
    if fit_config:
        config["fit"] = fit_config
    _write_torch(
        folder / MODEL_FILE,
        {"format": _FORMAT, "params": params, "constraints": constraints, "prefixed": prefixed},
    )
    _write_torch(
        folder / DATA_FILE,
        {
            "args": [_plain(a, f"args[{i}]") for i, a in enumerate(args)],
            "kwargs": {k: _plain(v, k) for k, v in kwargs.items()},
        },
    )
    if history is not None:
        import pandas as pd

        frame = history if isinstance(history, pd.DataFrame) else pd.DataFrame(list(history))
        write_text(folder / METRICS_FILE, frame.to_csv(index=False))
    write_text(folder / CONFIG_FILE, yaml.safe_dump(config, sort_keys=False))
    return folder


def _load_program(path: Path, config: dict[str, Any], model: Any, guide: Any, device: Any) -> Any:
    from torch.distributions import transform_to  # what the param store uses

    from bayesvae.models.program import AUTOGUIDES, PyroProgram

    name, guide_name = config["model"]["model"], config["model"]["guide"]
    if model is None:
        raise ValueError(
            f"{path} holds a fit of the Pyro program {name!r}; pass the function: "
            f"bayesvae.load(path, model={name.split('.')[-1]}) (its source is in config.yaml)."
        )
    if guide is None:
        if guide_name not in AUTOGUIDES:
            raise ValueError(
                f"{path} was fitted with the guide {guide_name!r}; pass it: "
                "bayesvae.load(path, model=..., guide=...)."
            )
        guide = guide_name
    program = PyroProgram(model, guide)
    state = safe_torch_load(path / MODEL_FILE, device=device)
    data = safe_torch_load(path / DATA_FILE, device=device)
    if not isinstance(state, dict) or state.get("format") != _FORMAT:
        raise ValueError(f"{path / MODEL_FILE} is not a program state of format {_FORMAT}.")
    args, kwargs = tuple(data["args"]), dict(data["kwargs"])
    program.to(device)
    pyro.set_rng_seed(0)
    with torch.no_grad():  # builds a lazy AutoGuide's parameters, then overwrites them
        names = _program_param_names(program, args, kwargs)
    store = pyro.get_param_store()
    expected = {
        key: (f"{program.pyro_name}.{key}" if own else key)
        for key, own in state["prefixed"].items()
    }
    missing = sorted(set(expected.values()) - set(names))
    if missing:
        raise ValueError(
            f"the program given does not create the saved parameters {missing}; is it the "
            f"function {name!r} that was fitted?"
        )
    with torch.no_grad():
        for key, full in expected.items():
            constraint = _constraint_from_spec(state["constraints"][key])
            store._params[full].copy_(transform_to(constraint).inv(state["params"][key].to(device)))
    program.eval()
    program.fitted_data = (args, kwargs)
    return program


def load(
    path: str | os.PathLike[str],
    *,
    device: str | torch.device = "cpu",
    model: Any = None,
    guide: Any = None,
) -> Any:
    """Rebuild the model saved in run folder ``path`` on ``device`` (a GPU-saved run loads on CPU).

    A run folder of a user's Pyro program needs the program itself, ``model=`` (and ``guide=``
    unless it was an AutoGuide by name); its fitted arguments come back as
    ``program.fitted_data``.

    The model comes back in eval mode; call ``.train()`` before fitting it further. ``model.pt``
    is read with ``torch.load(weights_only=True)``: tensors and plain values only, so a crafted
    file cannot run code (it is refused with :class:`UnsafeFileError`). ``config.yaml`` is read
    with ``yaml.safe_load`` and only names a registered family.
    """
    import bayesvae.models  # noqa: F401  (registers the families)
    from bayesvae.models.base import get_model_class

    config = read_config(path)
    if not isinstance(config, dict) or "family" not in config:
        raise ValueError(f"{Path(path) / CONFIG_FILE} names no model family.")
    if config["family"] == PROGRAM_FAMILY:
        return _load_program(Path(path), config, model, guide, device)
    if model is not None or guide is not None:
        raise ValueError(f"{path} holds a {config['family']}; model= and guide= are for programs.")
    model = get_model_class(config["family"]).from_config(config["model"])
    model.to(device)
    state = safe_torch_load(Path(path) / MODEL_FILE, device=device)
    if not isinstance(state, dict) or state.get("format") != _FORMAT:
        found = state.get("format") if isinstance(state, dict) else type(state).__name__
        raise ValueError(
            f"{Path(path) / MODEL_FILE} has format {found!r}; this version of bayesvae reads "
            f"format {_FORMAT} (format 1 run folders, which pickled their parameter constraints, "
            "cannot be loaded safely: refit and save them again)."
        )
    load_model_state(model, state)
    model.eval()
    return model


def save_checkpoint(path: str | os.PathLike[str], checkpoint: dict[str, Any]) -> Path:
    """Write a training checkpoint (a dict of tensors, states and plain values) atomically."""
    return _write_torch(Path(path), checkpoint)


def load_checkpoint(
    path: str | os.PathLike[str], *, device: str | torch.device = "cpu"
) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` (``weights_only=True``: a file that
    holds anything but tensors and plain values raises :class:`UnsafeFileError`)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path} to resume from.")
    return safe_torch_load(path, device=device)
