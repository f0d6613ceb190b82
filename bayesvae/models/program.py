"""A user's own Pyro program as a model: any ``model(*args, **kwargs)`` with an AutoGuide (by
name or instance) or the user's own guide.

:class:`PyroProgram` is the general case of bayesvae's model contract: the built-in families
are programs that bring their own guide, validation and queries. The fit loop gives a program its
own arguments every step (full data; a ``pyro.plate(..., subsample_size=B)`` inside the program
draws the minibatch and scales it by ``N / B``, as in plain Pyro).
"""

from __future__ import annotations

import inspect
import itertools
from collections.abc import Callable
from typing import Any

import numpy as np
import pyro
import torch
from pyro import poutine
from pyro.infer import autoguide

from bayesvae.models.contract import ModelContract, PyroProgramLike

__all__ = [
    "PyroProgram",
    "AUTOGUIDES",
    "as_model",
    "program_inputs",
    "is_numpyro_program",
    "ProgramSites",
    "inspect_sites",
    "check_program",
    "named_inputs",
    "site_dims",
]

#: ``guide=`` names and the Pyro AutoGuide each one builds
AUTOGUIDES: dict[str, type[autoguide.AutoGuide]] = {
    "normal": autoguide.AutoNormal,
    "mvn": autoguide.AutoMultivariateNormal,
    "lowrank": autoguide.AutoLowRankMultivariateNormal,
    "iaf": autoguide.AutoIAFNormal,
    "delta": autoguide.AutoDelta,
    "laplace": autoguide.AutoLaplaceApproximation,
}
_program_counter = itertools.count()


def _name_of(fn: Any) -> str:
    """A user callable's name: a function's qualified name, else its class's."""
    if inspect.isfunction(fn) or inspect.ismethod(fn):
        return fn.__qualname__
    return type(fn).__qualname__


class PyroProgram(ModelContract, torch.nn.Module):
    """A Pyro program ``model_fn(*args, **kwargs)`` and its guide, as one model.

    Args:
        model_fn: any Pyro callable with ``pyro.sample`` statements (observed sites given
            ``obs=``); data enter as its positional and keyword arguments.
        guide: ``"normal"`` (AutoNormal, the default), ``"mvn"``, ``"lowrank"``, ``"iaf"``,
            ``"delta"`` (MAP) or ``"laplace"``; an AutoGuide instance; or the user's own guide
            callable taking the same arguments as ``model_fn``.
        init_loc_fn: an AutoGuide's initialisation (default: ``init_to_feasible``, zeros in
            unconstrained space: coefficients 0, scales 1; ignored for a guide instance or
            callable, and by AutoIAFNormal).
        module: an ``nn.Module`` whose parameters the model or guide uses (moved with the
            program, in train/eval mode with it).
        max_plate_nesting: deepest plate nesting (default: found from a trace of the model).

    ``self.model`` and ``self.guide`` are plain Pyro callables: ``pyro.infer.SVI(p.model,
    p.guide, ...)`` runs on them as on the user's own functions.
    """

    takes_num_data = False

    def __init__(
        self,
        model_fn: Callable[..., Any],
        guide: str | Callable[..., Any] = "normal",
        *,
        init_loc_fn: Callable[..., Any] | None = None,
        module: torch.nn.Module | None = None,
        max_plate_nesting: int | None = None,
    ) -> None:
        super().__init__()
        if not callable(model_fn):
            raise TypeError(
                f"model must be a callable Pyro program, got {type(model_fn).__name__}."
            )
        if max_plate_nesting is not None and (
            isinstance(max_plate_nesting, bool)
            or not isinstance(max_plate_nesting, int)
            or max_plate_nesting < 0
        ):
            raise ValueError(
                f"max_plate_nesting must be a non-negative integer, got {max_plate_nesting!r}."
            )
        self.model_fn = model_fn
        self.user_module = module
        self.max_plate_nesting = max_plate_nesting
        self.pyro_name = f"program{next(_program_counter)}"
        self.autoguide: autoguide.AutoGuide | None = None
        self.guide_fn: Callable[..., Any] | None = None
        if isinstance(guide, str):
            if guide not in AUTOGUIDES:
                raise ValueError(
                    f"unknown guide {guide!r}; expected one of {sorted(AUTOGUIDES)}, an AutoGuide "
                    "instance or a guide callable."
                )
            options: dict[str, Any] = {}
            if guide != "iaf":  # AutoIAFNormal ignores (and warns about) init_loc_fn
                # unconstrained zeros: coefficients at 0, scales at 1, probabilities at 0.5;
                # a noisy median of a broad prior can start far from any data's scale
                options["init_loc_fn"] = init_loc_fn or autoguide.initialization.init_to_feasible
            if guide in ("mvn", "lowrank", "normal"):
                options["init_scale"] = 0.1
            self.autoguide = AUTOGUIDES[guide](model_fn, **options)
            self.guide_name = guide
        elif isinstance(guide, autoguide.AutoGuide):
            self.autoguide = guide
            self.guide_name = type(guide).__name__
        elif callable(guide):
            self.guide_fn = guide
            self.guide_name = _name_of(guide)
        else:
            raise TypeError(
                "guide must be an AutoGuide name, an AutoGuide instance or a callable, got "
                f"{type(guide).__name__}."
            )
        if self.autoguide is not None:  # its parameters live under this program's own name
            self.autoguide._pyro_name = f"{self.pyro_name}.guide"
        self.config = {"model": _name_of(model_fn), "guide": self.guide_name}
        #: the arguments a loaded program was fitted on (set by ``bayesvae.load``)
        self.fitted_data: tuple[tuple[Any, ...], dict[str, Any]] | None = None
        #: labels of the pandas inputs it was fitted on (:func:`pandas_coords`), kept as
        #: coordinates of their dims in the InferenceData
        self.input_coords: dict[str, list[Any]] = {}

    def model(self, *args: Any, **kwargs: Any) -> Any:
        """The user's program, unchanged."""
        return self.model_fn(*args, **kwargs)

    def guide(self, *args: Any, **kwargs: Any) -> Any:
        """The AutoGuide or the user's guide."""
        if self.autoguide is not None:
            return self.autoguide(*args, **kwargs)
        assert self.guide_fn is not None
        return self.guide_fn(*args, **kwargs)

    @property
    def device(self) -> torch.device:
        for tensor in itertools.chain(self.parameters(), self.buffers()):
            return tensor.device
        return torch.device("cpu")

    def extra_repr(self) -> str:
        return f"model={self.config['model']}, guide={self.guide_name}"


def as_model(
    model: Any, guide: str | Callable[..., Any] | None = None, **options: Any
) -> ModelContract:
    """The :class:`ModelContract` for ``model``: a built-in family as it is; a plain Pyro
    callable, or an ``nn.Module`` with ``model``/``guide`` methods that is not a family, as a
    :class:`PyroProgram`."""
    if isinstance(model, ModelContract):
        if not isinstance(model, PyroProgramLike):
            raise TypeError(
                f"{type(model).__name__} has no Pyro model/guide (it describes the "
                f"{model.family} family for NumPyro NUTS); pass a {model.family} instead."
            )
        if guide is not None:
            raise ValueError(
                f"{type(model).__name__} brings its own guide; guide= is for plain Pyro programs."
            )
        return model
    if isinstance(model, torch.nn.Module) and callable(
        inspect.getattr_static(type(model), "model", None)
    ):
        own_guide = inspect.getattr_static(type(model), "guide", None)
        if guide is None and own_guide is None:
            raise TypeError(f"{type(model).__name__} has a model method but no guide; pass guide=.")
        return PyroProgram(
            model.model,
            guide if guide is not None else model.guide,
            module=model,
            **options,
        )
    if callable(model):
        return PyroProgram(model, guide if guide is not None else "normal", **options)
    raise TypeError(
        "model must be a Pyro program (a callable) or a bayesvae model, "
        f"got {type(model).__name__}."
    )


# ------------------------------------------------------------------------------ inputs
def _parameter_names(fn: Any, count: int) -> list[str]:
    try:
        parameters = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        parameters = []
    names = [
        p.name
        for p in parameters
        if p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    ]
    return [names[i] if i < len(names) else f"args[{i}]" for i in range(count)]


def _to_tensor(name: str, value: Any) -> Any:
    """Arrays (numpy, pandas) -> tensors (floating ones in torch's default dtype); tensors,
    scalars, ``None`` and other objects as they are. NaN/inf in an array is refused."""
    if hasattr(value, "to_numpy") and not torch.is_tensor(value):  # pandas Series / DataFrame
        value = value.to_numpy()
    if isinstance(value, np.ndarray):
        if not value.flags.writeable:  # e.g. a pandas column's view: torch wants its own copy
            value = value.copy()
        if value.dtype == object:
            raise TypeError(f"{name}: an array of Python objects cannot be data; got dtype object.")
        if value.dtype.kind == "f":
            value = torch.as_tensor(value, dtype=torch.get_default_dtype())
        elif value.dtype.kind in "iub":
            value = torch.as_tensor(value)
        else:
            raise TypeError(f"{name}: arrays must be numeric, got dtype {value.dtype}.")
    if torch.is_tensor(value) and value.is_floating_point() and not bool(value.isfinite().all()):
        bad = int((~value.isfinite()).sum())
        raise ValueError(f"{name} has {bad} NaN or infinite values; remove or impute them first.")
    return value


def program_inputs(
    model_fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """The program's arguments with arrays as tensors, each checked for NaN/inf (errors name the
    argument as the program's signature does)."""
    names = _parameter_names(model_fn, len(args))
    converted = tuple(_to_tensor(n, a) for n, a in zip(names, args, strict=True))
    return converted, {k: _to_tensor(k, v) for k, v in kwargs.items()}


def named_inputs(model_fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    """Argument name -> value for every argument given (positional ones named by signature)."""
    names = _parameter_names(model_fn, len(args))
    return {**dict(zip(names, args, strict=True)), **kwargs}


def pandas_coords(model_fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict:
    """Coordinates from a program's pandas arguments, by the dims their values get in the
    InferenceData (``<argument>_dim_0`` rows, ``<argument>_dim_1`` columns): a DataFrame's index
    and column names, a Series' index. ``{}`` when no argument is a pandas object."""
    coords: dict[str, list[Any]] = {}
    for name, value in named_inputs(model_fn, args, kwargs).items():
        if hasattr(value, "columns") and hasattr(value, "index"):  # a DataFrame
            coords[f"{name}_dim_0"] = value.index.tolist()
            coords[f"{name}_dim_1"] = [str(column) for column in value.columns]
        elif hasattr(value, "index") and hasattr(value, "to_numpy"):  # a Series
            coords[f"{name}_dim_0"] = value.index.tolist()
    return coords


def is_numpyro_program(model_fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    """Whether ``model_fn`` samples with NumPyro's primitives (it records NumPyro sites and no
    Pyro ones). A Pyro program is recognised without importing jax or numpyro."""
    try:
        with pyro.poutine.block(), poutine.trace() as pyro_trace:
            model_fn(*args, **kwargs)
        if any(site["type"] == "sample" for site in pyro_trace.trace.nodes.values()):
            return False
    except Exception:  # noqa: BLE001 (any failure: decide from NumPyro's trace below)
        pass
    try:
        import jax.numpy as jnp
        import numpyro
        from numpyro import handlers

        converted = tuple(jnp.asarray(a.cpu().numpy()) if torch.is_tensor(a) else a for a in args)
        with numpyro.handlers.seed(rng_seed=0):
            trace = handlers.trace(model_fn).get_trace(*converted, **kwargs)
    except Exception:  # noqa: BLE001
        return False
    return any(site["type"] == "sample" for site in trace.values())


# ------------------------------------------------------------------------------ checks
class ProgramSites:
    """What one trace of a program shows: latent and observed sample sites, deterministic sites,
    plates (name -> (size, subsample size, dim)) and the data size."""

    def __init__(self, trace: Any) -> None:
        self.latent: list[str] = []
        self.observed: list[str] = []
        self.deterministic: list[str] = []
        self.enumerated: set[str] = set()
        self.plates: dict[str, tuple[int, int, int]] = {}
        for name, site in trace.nodes.items():
            if (
                site["type"] != "sample"
                or type(site["fn"]).__name__ == "_Subsample"
                or site["infer"].get("is_auxiliary")
            ):
                continue  # params, plates' subsample sites, an AutoGuide's auxiliary latent
            for frame in site["cond_indep_stack"]:
                if frame.vectorized and frame.size is not None:
                    full = frame.full_size if frame.full_size is not None else frame.size
                    self.plates[frame.name] = (int(full), int(frame.size), int(frame.dim))
            if site["infer"].get("_deterministic"):
                self.deterministic.append(name)
            elif site["is_observed"]:
                self.observed.append(name)
            else:
                self.latent.append(name)
                if site["infer"].get("enumerate"):
                    self.enumerated.add(name)
        self._trace = trace

    @property
    def trace(self) -> Any:
        """The Pyro trace the sites were read from."""
        return self._trace

    @property
    def nesting(self) -> int:
        """Deepest plate nesting seen (0 without plates)."""
        return max((-dim for _, _, dim in self.plates.values()), default=0)

    def local_plate(self) -> str | None:
        """The plate every latent and every observed site sits in, when there is one (the
        latents are then per data point, e.g. a VAE written as a program): per-point PSIS k̂
        applies to it. ``None`` for programs with global latents."""
        shared: set[str] | None = None
        for name in self.latent + self.observed:
            frames = {
                frame.name
                for frame in self._trace.nodes[name]["cond_indep_stack"]
                if frame.vectorized and frame.size is not None
            }
            shared = frames if shared is None else shared & frames
        if not shared or not self.latent:
            return None
        return max(shared, key=lambda plate: self.plates[plate][0])  # the data plate

    def data_size(self) -> int:
        """Points the ELBO is normalised by: the largest full size of a plate holding an
        observed site (1 without one)."""
        sizes = [1]
        for name in self.observed:
            for frame in self._trace.nodes[name]["cond_indep_stack"]:
                if frame.vectorized and frame.size is not None:
                    sizes.append(int(frame.full_size or frame.size))
        return max(sizes)


def site_dims(
    name: str,
    site: dict[str, Any],
    shape: tuple[int, ...],
    event_dim: int | None = None,
    nesting: int = 0,
) -> list[str]:
    """ArviZ dim names for a site's value of ``shape`` (no draws dims): the plate's name where a
    plate owns a batch dim, ``<site>_dim_<i>`` otherwise. A ``pyro.deterministic`` value's dims
    beyond ``nesting`` plate slots are its event dims."""
    if event_dim is None:
        event_dim = (
            max(0, len(shape) - nesting)
            if site["infer"].get("_deterministic")
            else site["fn"].event_dim
        )
    batch_len = len(shape) - event_dim
    plates = {f.dim: f.name for f in site["cond_indep_stack"] if f.vectorized}
    names = []
    for i in range(len(shape)):
        relative = i - batch_len
        names.append(
            plates[relative] if i < batch_len and relative in plates else f"{name}_dim_{i}"
        )
    return names


def param_sites(
    model_fn: Any, guide_fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> dict[str, Any]:
    """Run ``guide_fn`` and then ``model_fn`` replayed on it once, without gradients (creating
    lazy parameters, e.g. an AutoGuide's), and return the ``pyro.param`` sites they touched,
    name -> site, in order of first use."""
    with torch.no_grad(), poutine.trace(param_only=True) as capture:
        guide_trace = poutine.trace(guide_fn).get_trace(*args, **kwargs)
        poutine.replay(model_fn, trace=guide_trace)(*args, **kwargs)
    return dict(capture.trace.nodes)


def inspect_sites(fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> ProgramSites:
    """Trace ``fn(*args, **kwargs)`` once (parameters created as a side effect, no gradient)."""
    with torch.no_grad():
        trace = poutine.trace(fn).get_trace(*args, **kwargs)
    return ProgramSites(trace)


def check_program(program: PyroProgram, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    """Check a program and its guide on the data before any training; return the data size the
    ELBO is normalised by.

    Raises ``ValueError`` for a program that samples no observed site, a guide whose latent sites
    differ from the model's (naming them), or a subsampled plate whose size disagrees with the
    data; ``TypeError`` for a NumPyro program.
    """
    if is_numpyro_program(program.model_fn, args, kwargs):
        raise TypeError(
            f"{program.config['model']} is a NumPyro program (numpyro.sample); bayesvae.fit trains "
            "Pyro programs. Run it with bayesvae.mcmc(..., backend='numpyro'), or write it "
            "with pyro.sample."
        )
    try:
        model_sites = inspect_sites(program.model, args, kwargs)
    except (ValueError, TypeError, RuntimeError) as err:
        raise type(err)(
            f"running the model {program.config['model']} on the data failed: {err}"
        ) from err
    if not model_sites.observed:
        raise ValueError(
            f"the model {program.config['model']} samples no observed site (no pyro.sample with "
            "obs= given data); there is nothing to condition on. Pass the observations as an "
            "argument and use them as obs=."
        )
    if program.max_plate_nesting is None:
        program.max_plate_nesting = model_sites.nesting
    guide_sites = inspect_sites(program.guide, args, kwargs)
    missing = sorted(set(model_sites.latent) - set(guide_sites.latent))
    extra = sorted(set(guide_sites.latent) - set(model_sites.latent) - set(model_sites.observed))
    # discrete sites marked for enumeration are summed out by TraceEnum_ELBO, not guided
    missing = [name for name in missing if name not in model_sites.enumerated]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"latent sites of the model missing from the guide: {missing}")
        if extra:
            parts.append(f"guide sites the model does not sample: {extra}")
        raise ValueError(
            f"the guide {program.guide_name} does not match the model {program.config['model']}: "
            + "; ".join(parts)
            + "."
        )
    lengths = _data_lengths(args, kwargs)
    for name, (full, size, _) in model_sites.plates.items():
        if size < full and lengths and full not in lengths:
            raise ValueError(
                f"plate {name!r} subsamples {size} of size={full}, but the data passed have "
                f"{sorted(lengths)} rows; the plate's size must be the full data size "
                f"(pyro.plate({name!r}, len(data), subsample_size={size}))."
            )
    return model_sites.data_size()


def _data_lengths(args: tuple[Any, ...], kwargs: dict[str, Any]) -> set[int]:
    return {
        int(value.shape[0])
        for value in (*args, *kwargs.values())
        if torch.is_tensor(value) and value.dim() > 0
    }
