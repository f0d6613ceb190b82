"""Strict, deterministic tests: param store cleared, validation on, seeded, Agg backend."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# One persistent JAX compilation cache for every process of a test run (the xdist workers and the
# commands they start), never the user's: .pytest_cache/jax (git-ignored; `make clean` removes
# it). NumPyro starts NUTS by running the model op by op, and on a CPU each primitive run that
# way is a compilation of its own (about 50 ms); tests sampling the same model read those back,
# as a second NUTS run of the anomaly mixture in docs/anomaly.md did in 20 s instead of 58 s.
# A size limit turns on JAX's file lock, so the two workers never read a half-written entry.
JAX_TEST_CACHE = ROOT / ".pytest_cache" / "jax"
os.environ["BAYESVAE_JAX_CACHE"] = str(JAX_TEST_CACHE)  # the CLI's folder, in process too
os.environ.setdefault("JAX_COMPILATION_CACHE_MAX_SIZE", str(4 * 2**30))

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

from bayesvae.backends.compilation_cache import enable_compilation_cache  # noqa: E402

enable_compilation_cache(JAX_TEST_CACHE)

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
