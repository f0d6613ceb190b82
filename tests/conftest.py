"""Strict, deterministic tests: param store cleared, validation on, seeded, Agg backend."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib
import pyro
import pytest

matplotlib.use("Agg")

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("BAYESVAE_DATA", ROOT.parent / "shared" / "data"))


@pytest.fixture(autouse=True)
def _pyro_state():
    pyro.clear_param_store()
    pyro.enable_validation(True)
    pyro.set_rng_seed(0)
    yield
    pyro.clear_param_store()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared real-data folder; tests using it skip when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def digits():
    from bayesvae.data import load_digits

    return load_digits()
