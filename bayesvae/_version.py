"""The package version, in one place, and the versions a run is fitted with (recorded in every
run folder's ``config.yaml`` and shown by its report)."""

from __future__ import annotations

__version__ = "0.1.0"


def runtime_versions() -> dict[str, str]:
    """Python's and the libraries' versions now: python, torch, pyro, numpyro, jax, arviz,
    bayesvae."""
    import platform
    from importlib.metadata import PackageNotFoundError, version

    found = {"python": platform.python_version()}
    for name, distribution in (
        ("torch", "torch"),
        ("pyro", "pyro-ppl"),
        ("numpyro", "numpyro"),
        ("jax", "jax"),
        ("arviz", "arviz"),
    ):
        try:  # the installed distribution's metadata: no need to import (and start) jax
            found[name] = version(distribution)
        except PackageNotFoundError:
            found[name] = "not installed"
    found["bayesvae"] = __version__
    return found
