"""Run folders, the one home for them: atomic whole-folder saves with a manifest, the versions a
run was made with, and loading that never runs code (``weights_only=True``).

- :class:`RunWriter` / :func:`writing`: assemble a run in a temporary sibling, then swap it in.
- :func:`open_run` / :class:`RunFolder`: read one (config, metrics, JSON, CSV, netCDF).
- :func:`save_model`, :func:`save_program`, :func:`load`: a model's run folder.
- :mod:`bayesvae.runs.files`: single files written atomically, ``safe_torch_load``.
"""

from bayesvae.runs.files import (
    UnsafeFileError,
    atomic_path,
    atomic_write,
    safe_torch_load,
    write_text,
    write_torch,
)
from bayesvae.runs.folder import (
    CONFIG_FILE,
    KEPT_ENTRIES,
    MANIFEST_FILE,
    METRICS_FILE,
    MODEL_FILE,
    RunFolder,
    RunWriter,
    is_run_folder,
    load,
    model_from_dict,
    model_to_dict,
    open_run,
    read_config,
    save_model,
    save_program,
    writing,
)
from bayesvae.runs.state import load_model_state, model_state

__all__ = [
    "RunWriter",
    "RunFolder",
    "writing",
    "open_run",
    "is_run_folder",
    "save_model",
    "save_program",
    "load",
    "read_config",
    "model_to_dict",
    "model_from_dict",
    "model_state",
    "load_model_state",
    "UnsafeFileError",
    "atomic_write",
    "atomic_path",
    "write_text",
    "write_torch",
    "safe_torch_load",
    "CONFIG_FILE",
    "MODEL_FILE",
    "METRICS_FILE",
    "MANIFEST_FILE",
    "KEPT_ENTRIES",
]
