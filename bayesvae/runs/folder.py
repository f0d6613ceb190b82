"""Run folders: the one place that writes and reads them.

A run folder is what a user keeps: ``config.yaml`` (what rebuilds the model, the versions it was
trained with), ``model.pt`` (module state and Pyro param store entries), ``metrics.csv``
(history), and whatever a workflow adds (scores, figures, ``posterior.nc``, ``report.html``).

Writing goes through :class:`RunWriter`: every file lands in a temporary sibling folder, a
``manifest.json`` (every file's size and SHA-256) is written last, and the folder is then
renamed into place, so a crash mid-save leaves the old run or the new one, never a mixture.
Reading goes through :class:`RunFolder`, which finishes a swap a crash interrupted and checks the
manifest; ``torch`` files load with ``weights_only=True``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from bayesvae.runs.files import (
    TEMP_SUFFIX,
    fsync_folder,
    safe_torch_load,
    umask_mode,
    write_text,
    write_torch,
)
from bayesvae.runs.state import (
    constraint_from_spec,
    constraint_spec,
    load_model_state,
    model_state,
    plain_value,
    program_param_names,
)

__all__ = [
    "RunWriter",
    "RunFolder",
    "writing",
    "open_run",
    "save_model",
    "save_program",
    "load",
    "read_config",
    "is_run_folder",
    "model_to_dict",
    "model_from_dict",
    "CONFIG_FILE",
    "MODEL_FILE",
    "METRICS_FILE",
    "DATA_FILE",
    "MANIFEST_FILE",
    "KEPT_ENTRIES",
    "PROGRAM_FAMILY",
]

CONFIG_FILE, MODEL_FILE, METRICS_FILE = "config.yaml", "model.pt", "metrics.csv"
DATA_FILE, MANIFEST_FILE = "data.pt", "manifest.json"
PROGRAM_FAMILY = "PyroProgram"
#: 2: parameter constraints stored as names (loadable with ``weights_only=True``); 1: pickled
STATE_FORMAT = 2
MANIFEST_FORMAT = 1
#: entries of a run folder that outlive the run written over them (training checkpoints, so a
#: resumed fit finds them) and that the manifest does not cover (they change while training)
KEPT_ENTRIES = ("checkpoints",)
#: files that mark a folder as holding a run (an empty folder, or one holding only
#: :data:`KEPT_ENTRIES`, holds none)
RUN_MARKERS = (CONFIG_FILE, MANIFEST_FILE, "result.json", "report.html")
_NEW, _OLD = ".new-", ".old-"


def is_run_folder(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a folder holding a run (any of its marker files)."""
    folder = Path(path)
    return folder.is_dir() and any((folder / name).exists() for name in RUN_MARKERS)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _file_entry(path: Path) -> dict[str, Any]:
    return {"bytes": path.stat().st_size, "sha256": _sha256(path)}


def _covered_files(folder: Path) -> list[str]:
    """The files a manifest lists: every file of ``folder`` but the manifest, temporary files
    and :data:`KEPT_ENTRIES`, as POSIX paths relative to it."""
    names = []
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if not path.is_file() or relative.parts[0] in KEPT_ENTRIES:
            continue
        if relative.as_posix() == MANIFEST_FILE or path.name.endswith(TEMP_SUFFIX):
            continue
        names.append(relative.as_posix())
    return names


def _siblings(path: Path, marker: str) -> list[Path]:
    if not path.parent.is_dir():
        return []
    return sorted(
        (p for p in path.parent.glob(f".{path.name}{marker}*") if p.is_dir()),
        key=lambda p: p.stat().st_mtime,
    )


def _recover(path: Path) -> None:
    """Finish a swap that a crash interrupted between its two renames, then remove what
    interrupted saves left behind: unfinished ``.NAME.new-*`` folders, ``.NAME.old-*`` folders
    (after moving their :data:`KEPT_ENTRIES` back) and temporary files in the kept entries."""
    if not path.exists():
        finished = [p for p in _siblings(path, _NEW) if (p / MANIFEST_FILE).is_file()]
        previous = _siblings(path, _OLD)
        if finished:  # the new run was complete: roll forward
            os.replace(finished[-1], path)
        elif previous:  # roll back to the old run
            os.replace(previous[-1], path)
        else:
            return
        fsync_folder(path.parent)
    for stale in _siblings(path, _OLD):
        for entry in KEPT_ENTRIES:
            if (stale / entry).exists() and not (path / entry).exists():
                os.replace(stale / entry, path / entry)
        shutil.rmtree(stale, ignore_errors=True)
    for stale in _siblings(path, _NEW):
        shutil.rmtree(stale, ignore_errors=True)
    for entry in KEPT_ENTRIES:
        if (path / entry).is_dir():
            for leftover in (path / entry).glob(f".*{TEMP_SUFFIX}"):
                leftover.unlink(missing_ok=True)


class RunWriter:
    """A run folder being written. Files go into a temporary sibling of ``path``
    (:attr:`folder`); :meth:`commit` writes ``manifest.json`` last and renames the folder into
    place, replacing a run already at ``path`` whole (its :data:`KEPT_ENTRIES` move over).

    Use it as a context manager: the run is committed when the block ends without an error and
    discarded otherwise. ``path`` may be missing, an empty folder, a folder holding a run
    (replaced when ``overwrite``), or a folder holding only checkpoints; a folder holding other
    files is refused, so a save never deletes what is not a run.
    """

    def __init__(self, path: str | os.PathLike[str], *, overwrite: bool = True) -> None:
        final = Path(path)
        if final.is_symlink():
            final = Path(os.path.realpath(final))
        if final.exists() and not final.is_dir():
            raise ValueError(f"path {final} exists and is not a folder.")
        _recover(final)
        if final.is_dir():
            if is_run_folder(final):
                if not overwrite:
                    raise FileExistsError(
                        f"{final} already holds a run; pass overwrite=True to replace it."
                    )
            else:
                foreign = sorted(p.name for p in final.iterdir() if p.name not in KEPT_ENTRIES)
                if foreign:
                    raise ValueError(
                        f"path {final} holds files that are not a bayesvae run ({foreign[:3]}); "
                        "a run folder replaces what is there, so choose a new or empty folder."
                    )
        final.parent.mkdir(parents=True, exist_ok=True)
        self.path = final
        self.folder = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}{_NEW}"))
        os.chmod(self.folder, umask_mode(0o777))
        self._done = False

    # ------------------------------------------------------------------------------ writing
    def file(self, name: str) -> Path:
        """Where file ``name`` goes (inside the temporary folder); its parent is created."""
        target = self.folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        return target

    def write_text(self, name: str, text: str) -> Path:
        return write_text(self.file(name), text)

    def write_json(self, name: str, value: Any) -> Path:
        """``value`` (NumPy numbers and arrays become plain ones) as indented JSON."""
        return self.write_text(name, json.dumps(_plain(value), indent=2))

    def write_csv(self, name: str, frame: Any, **to_csv: Any) -> Path:
        """A DataFrame (or a list of row dicts) as CSV, without the index by default."""
        import pandas as pd

        frame = frame if isinstance(frame, pd.DataFrame) else pd.DataFrame(list(frame))
        return self.write_text(name, frame.to_csv(**{"index": False, **to_csv}))

    def write_netcdf(self, name: str, idata: Any) -> Path:
        """An ArviZ ``InferenceData`` as netCDF."""
        from bayesvae.runs.files import atomic_path

        with atomic_path(self.file(name)) as tmp:
            idata.to_netcdf(str(tmp))
        return self.folder / name

    def write_torch(self, name: str, value: Any) -> Path:
        return write_torch(self.file(name), value)

    def write_config(self, family: str, model: dict[str, Any], **sections: Any) -> Path:
        """``config.yaml``: the family, its ``model:`` settings, the bayesvae version and the
        versions the run was made with, then ``sections`` (``fit=...``, ``analysis=...``)."""
        from bayesvae._version import __version__, runtime_versions

        config = {
            "bayesvae_version": __version__,
            "family": family,
            "model": model,
            "versions": runtime_versions(),
            **{key: value for key, value in sections.items() if value},
        }
        return self.write_text(CONFIG_FILE, yaml.safe_dump(_plain(config), sort_keys=False))

    def reader(self) -> RunFolder:
        """The files written so far, read as a run folder named like the final one (a report
        built before the commit goes into the run)."""
        return RunFolder(self.folder, name=self.path.name)

    # ---------------------------------------------------------------------------- finishing
    def commit(self) -> Path:
        """Write the manifest, then swap the folder into place; returns the final path."""
        if self._done:
            raise RuntimeError(f"the run at {self.path} was already committed or discarded.")
        files = {name: _file_entry(self.folder / name) for name in _covered_files(self.folder)}
        manifest = {"format": MANIFEST_FORMAT, "files": files}
        self.write_text(MANIFEST_FILE, json.dumps(manifest, indent=2, sort_keys=True))
        fsync_folder(self.folder)
        old = None
        if self.path.exists():
            old = Path(tempfile.mkdtemp(dir=self.path.parent, prefix=f".{self.path.name}{_OLD}"))
            os.replace(self.path, old)  # an empty folder as target: replace works on POSIX
        os.replace(self.folder, self.path)
        if old is not None:
            for entry in KEPT_ENTRIES:
                if (old / entry).exists() and not (self.path / entry).exists():
                    os.replace(old / entry, self.path / entry)
            shutil.rmtree(old, ignore_errors=True)
        fsync_folder(self.path.parent)
        self._done = True
        return self.path

    def discard(self) -> None:
        """Drop everything written; a run already at ``path`` stays as it was."""
        if not self._done:
            shutil.rmtree(self.folder, ignore_errors=True)
            self._done = True

    def __enter__(self) -> RunWriter:
        return self

    def __exit__(self, kind: Any, error: Any, traceback: Any) -> None:
        if kind is None:
            self.commit()
        else:
            self.discard()


@contextlib.contextmanager
def writing(target: str | os.PathLike[str] | RunWriter, *, overwrite: bool = True):
    """A :class:`RunWriter` for ``target``: the one given (a caller assembling a bigger run, which
    commits it), or a new one for a path, committed when the block ends."""
    if isinstance(target, RunWriter):
        yield target
        return
    with RunWriter(target, overwrite=overwrite) as run:
        yield run


def _plain(value: Any) -> Any:
    """``value`` with NumPy numbers and arrays as Python ones and tuples as lists, at any depth
    of dicts and lists (what ``yaml.safe_dump`` and ``json.dumps`` can write)."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, (np.generic, np.ndarray)):
        return value.tolist()
    return value


def _unreadable(path: Path, err: BaseException) -> ValueError:
    first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return ValueError(f"{path} cannot be read: {first}")


class RunFolder:
    """A run folder, read: its config, its files by kind, and files added to it later (a report)
    recorded in its manifest. ``open_run(path)`` is the usual way to get one."""

    def __init__(self, path: str | os.PathLike[str], *, name: str | None = None) -> None:
        self.path = Path(path)
        self.name = name if name is not None else self.path.resolve().name
        self._config: dict[str, Any] | None = None

    @property
    def config(self) -> dict[str, Any]:
        """The parsed ``config.yaml`` (see :func:`read_config`)."""
        if self._config is None:
            self._config = read_config(self.path)
        return self._config

    @property
    def family(self) -> str:
        return self.config["family"]

    def has(self, name: str) -> bool:
        return (self.path / name).is_file()

    def file(self, name: str) -> Path:
        """The path of file ``name`` in the run (it may not exist yet)."""
        return self.path / name

    def json(self, name: str) -> dict[str, Any]:
        """A JSON object file (``{}`` when absent; ``ValueError`` naming it when corrupt)."""
        path = self.path / name
        if not path.is_file():
            return {}
        try:
            value = json.loads(path.read_text())
        except (ValueError, OSError) as err:
            raise _unreadable(path, err) from None
        if not isinstance(value, dict):
            raise ValueError(f"{path} is not a JSON object.")
        return value

    def csv(self, name: str) -> Any:
        """A CSV file as a DataFrame (``None`` when absent; ``ValueError`` when corrupt)."""
        import pandas as pd

        path = self.path / name
        if not path.is_file():
            return None
        try:
            return pd.read_csv(path)
        except (ValueError, OSError, UnicodeDecodeError) as err:  # ParserError is a ValueError
            raise _unreadable(path, err) from None

    def metrics(self) -> Any:
        """The training history (``metrics.csv``) as a DataFrame, or ``None``."""
        return self.csv(METRICS_FILE)

    def inference_data(self, name: str = "posterior.nc") -> Any:
        """An ArviZ netCDF file as ``InferenceData`` (``None`` when absent)."""
        import arviz as az

        path = self.path / name
        if not path.is_file():
            return None
        try:
            return az.from_netcdf(path)
        except (ValueError, OSError, KeyError) as err:
            raise _unreadable(path, err) from None

    def torch(self, name: str, *, device: str | torch.device = "cpu") -> Any:
        """A ``torch`` file, read with ``weights_only=True``."""
        return safe_torch_load(self.path / name, device=device)

    # ----------------------------------------------------------------------------- manifest
    def manifest(self) -> dict[str, Any] | None:
        """The parsed ``manifest.json``, or ``None`` for a folder saved without one (by bayesvae
        before 0.3, or still being written)."""
        if not self.has(MANIFEST_FILE):
            return None
        manifest = self.json(MANIFEST_FILE)
        if manifest.get("format") != MANIFEST_FORMAT or not isinstance(manifest.get("files"), dict):
            raise ValueError(f"{self.path / MANIFEST_FILE} is not a bayesvae manifest.")
        return manifest

    def verify(self, names: Any = None) -> None:
        """Check the files the manifest lists (or only ``names``) against their recorded size
        and SHA-256; ``ValueError`` naming the first that differs or is missing."""
        manifest = self.manifest()
        if manifest is None:
            return
        for name, entry in manifest["files"].items():
            if names is not None and name not in names:
                continue
            path = self.path / name
            if not path.is_file():
                raise ValueError(
                    f"{path} is missing: the run's manifest.json lists it (an interrupted copy?)."
                )
            if path.stat().st_size != entry.get("bytes") or _sha256(path) != entry.get("sha256"):
                raise ValueError(
                    f"{path} is not the file this run saved (its size or SHA-256 differs from "
                    "manifest.json): the folder was changed after the save. Refit, or delete "
                    "manifest.json to accept the folder as it is."
                )

    def record(self, *names: str) -> None:
        """Add files written into the run after it was saved (a report, a figure) to its
        manifest, atomically; a no-op for a folder without a manifest."""
        manifest = self.manifest()
        if manifest is None:
            return
        for name in names:
            manifest["files"][name] = _file_entry(self.path / name)
        write_text(self.path / MANIFEST_FILE, json.dumps(manifest, indent=2, sort_keys=True))

    def write_text(self, name: str, text: str) -> Path:
        """Write a file into the run (atomically) and record it in the manifest."""
        path = write_text(self.path / name, text)
        self.record(name)
        return path


def open_run(path: str | os.PathLike[str]) -> RunFolder:
    """The run folder at ``path``, after finishing a save a crash interrupted; its config is
    read and checked (``FileNotFoundError`` / ``ValueError`` naming the file)."""
    folder = Path(path)
    _recover(folder)
    run = RunFolder(folder)
    run.config  # noqa: B018  (fails early, naming config.yaml)
    return run


def read_config(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The parsed ``config.yaml`` of a run folder: a mapping that names its ``family`` and its
    ``model:`` settings (``ValueError`` naming the file when it is not)."""
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


# ------------------------------------------------------------------------- models in runs
def save_model(
    model: Any,
    target: str | os.PathLike[str] | RunWriter,
    *,
    history: Any = None,
    fit_config: dict[str, Any] | None = None,
) -> Path:
    """Save ``model`` as a run folder at ``target`` (a path, replaced whole; or an open
    :class:`RunWriter`): config.yaml, model.pt and, with ``history`` (a DataFrame or list of
    rows), metrics.csv. Returns the run's path."""
    with writing(target) as run:
        run.write_torch(MODEL_FILE, {"format": STATE_FORMAT, **model_state(model)})
        if history is not None:
            run.write_csv(METRICS_FILE, history)
        run.write_config(model.family, model.config, fit=fit_config)
    return run.path


def save_program(
    program: Any,
    data: tuple[tuple[Any, ...], dict[str, Any]],
    target: str | os.PathLike[str] | RunWriter,
    *,
    history: Any = None,
    fit_config: dict[str, Any] | None = None,
) -> Path:
    """Save a fitted :class:`~bayesvae.models.program.PyroProgram` as a run folder: config.yaml
    (the program's name, guide and source), model.pt (its parameters, constraints by name),
    data.pt (the arguments it was fitted on, so ``load`` can build a lazy AutoGuide again) and
    metrics.csv. Load it with ``bayesvae.load(path, model=the_function)``."""
    import inspect

    import pyro

    args, kwargs = data
    store = pyro.get_param_store()
    prefix = program.pyro_name + "."
    params, constraints, prefixed = {}, {}, {}
    for name in program_param_names(program, args, kwargs):
        own = name.startswith(prefix)
        key = name[len(prefix) :] if own else name
        params[key] = store[name].detach().cpu()
        constraints[key] = constraint_spec(store._constraints[name], name)
        prefixed[key] = own
    try:
        source = inspect.getsource(program.model_fn)
    except (OSError, TypeError):
        source = None
    arguments = {
        "args": [plain_value(a, f"args[{i}]") for i, a in enumerate(args)],
        "kwargs": {k: plain_value(v, k) for k, v in kwargs.items()},
    }
    with writing(target) as run:
        run.write_torch(
            MODEL_FILE,
            {
                "format": STATE_FORMAT,
                "params": params,
                "constraints": constraints,
                "prefixed": prefixed,
            },
        )
        run.write_torch(DATA_FILE, arguments)
        if history is not None:
            run.write_csv(METRICS_FILE, history)
        run.write_config(
            PROGRAM_FAMILY, dict(program.config), program={"source": source}, fit=fit_config
        )
    return run.path


def _load_program(run: RunFolder, model: Any, guide: Any, device: Any) -> Any:
    import pyro
    from torch.distributions import transform_to  # what the param store uses

    from bayesvae.models.program import AUTOGUIDES, PyroProgram

    path, config = run.path, run.config
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
    state = run.torch(MODEL_FILE, device=device)
    data = run.torch(DATA_FILE, device=device)
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise ValueError(f"{path / MODEL_FILE} is not a program state of format {STATE_FORMAT}.")
    args, kwargs = tuple(data["args"]), dict(data["kwargs"])
    program.to(device)
    pyro.set_rng_seed(0)
    with torch.no_grad():  # builds a lazy AutoGuide's parameters, then overwrites them
        names = program_param_names(program, args, kwargs)
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
            constraint = constraint_from_spec(state["constraints"][key])
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

    The model comes back in eval mode; call ``.train()`` before fitting it further. The files
    are checked against the run's ``manifest.json`` first (a folder changed or half-copied after
    its save is refused). ``model.pt`` is read with ``torch.load(weights_only=True)``: tensors
    and plain values only, so a crafted file cannot run code (it is refused with
    :class:`UnsafeFileError`). ``config.yaml`` is read with ``yaml.safe_load`` and only names a
    registered family.
    """
    import bayesvae.models  # noqa: F401  (registers the families)
    from bayesvae.models.base import get_model_class

    run = open_run(path)
    run.verify([CONFIG_FILE, MODEL_FILE, DATA_FILE])
    config = run.config
    if config["family"] == PROGRAM_FAMILY:
        return _load_program(run, model, guide, device)
    if model is not None or guide is not None:
        raise ValueError(f"{path} holds a {config['family']}; model= and guide= are for programs.")
    built = get_model_class(config["family"]).from_config(config["model"])
    built.to(device)
    state = run.torch(MODEL_FILE, device=device)
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        found = state.get("format") if isinstance(state, dict) else type(state).__name__
        raise ValueError(
            f"{Path(path) / MODEL_FILE} has format {found!r}; this version of bayesvae reads "
            f"format {STATE_FORMAT} (format 1 run folders, which pickled their parameter "
            "constraints, cannot be loaded safely: refit and save them again)."
        )
    load_model_state(built, state)
    built.eval()
    return built


def model_to_dict(model: Any) -> dict[str, Any]:
    """A fitted family model as plain values and CPU tensors (its family, config and state), for
    pickling an estimator that holds one: Pyro tags trained parameters with weak references,
    which ``pickle`` cannot store. :func:`model_from_dict` rebuilds it."""
    return {"family": model.family, "config": model.config, "state": model_state(model)}


def model_from_dict(saved: dict[str, Any]) -> Any:
    """Inverse of :func:`model_to_dict`: the model, on the CPU, in eval mode."""
    import bayesvae.models  # noqa: F401  (registers the families)
    from bayesvae.models.base import get_model_class

    model = get_model_class(saved["family"]).from_config(saved["config"])
    load_model_state(model, saved["state"])
    model.eval()
    return model
