"""Strict, deterministic tests: param store cleared, validation on, seeded, Agg backend."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# The bayesvae command's persistent JAX compilation cache stays off in tests, in process and in
# the commands they start: a test never writes the user's ~/.cache/bayesvae/jax (the cache's own
# tests name a folder). NUTS no longer compiles op by op, so a shared cache did not shorten
# the suite (docs/anomaly.md, your_model.md and abtest.md: 555 s with one, 556 s without).
os.environ["BAYESVAE_JAX_CACHE"] = "off"

if os.environ.get("PYTEST_XDIST_WORKER"):
    # One thread per worker: with as many workers as cores, threads inside each worker only
    # contend (most tests are bound by Python, not by one big matrix product). Set before
    # torch or jax is imported.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("MKL_NUM_THREADS", "1")
    os.environ.setdefault(
        "XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
    )

import matplotlib  # noqa: E402
import pyro  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)

matplotlib.use("Agg")

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
