"""JAX's persistent compilation cache for the NumPyro backend.

NUTS and jitted SVI spend most of a short run compiling: on a 2-core CPU, NumPyro NUTS on the
two-arm A/B model compiles for about 5 s and samples for well under one. With the cache on,
XLA writes each compiled program to a folder and a later process with the same program, shapes,
JAX version and machine reads it back instead of compiling (JAX's own mechanism,
``jax_compilation_cache_dir``). The ``bayesvae`` command turns it on (folder below); in Python
call :func:`enable_compilation_cache` once, before the first NumPyro run.

Importing this module imports nothing heavy: before JAX is imported the settings go through
JAX's environment variables, afterwards through ``jax.config``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

__all__ = ["CACHE_ENV", "default_cache_dir", "enable_compilation_cache"]

#: environment variable: a folder for the cache, or ``off`` (also ``0``/``false``/``no``) to keep
#: the ``bayesvae`` command from turning it on
CACHE_ENV = "BAYESVAE_JAX_CACHE"
_OFF = ("off", "0", "false", "no")


def default_cache_dir() -> Path | None:
    """Where the cache lives: ``$BAYESVAE_JAX_CACHE`` when it names a folder, ``None`` when it
    says ``off``, else ``$XDG_CACHE_HOME/bayesvae/jax`` (``~/.cache/bayesvae/jax``)."""
    configured = os.environ.get(CACHE_ENV, "").strip()
    if configured.lower() in _OFF:
        return None
    if configured:
        return Path(configured).expanduser()
    base = os.environ.get("XDG_CACHE_HOME", "").strip() or Path.home() / ".cache"
    return Path(base) / "bayesvae" / "jax"


def enable_compilation_cache(directory: str | Path | None = None) -> Path | None:
    """Turn on JAX's persistent compilation cache in ``directory`` (default:
    :func:`default_cache_dir`; nothing happens when that says ``off``). Every compiled
    program is kept, however fast it compiled (NUTS compiles dozens of small ones). Returns the
    folder used, or ``None``. A folder that cannot be created raises ``OSError``."""
    folder = default_cache_dir() if directory is None else Path(directory).expanduser()
    if folder is None:
        return None
    folder.mkdir(parents=True, exist_ok=True)
    settings = {
        "jax_compilation_cache_dir": str(folder),
        "jax_persistent_cache_min_compile_time_secs": 0,
        "jax_persistent_cache_min_entry_size_bytes": 0,
    }
    if "jax" in sys.modules:
        import jax

        for name, value in settings.items():
            jax.config.update(name, value)
    else:  # read by JAX when it is imported
        for name, value in settings.items():
            os.environ[name.upper()] = str(value)
    return folder
