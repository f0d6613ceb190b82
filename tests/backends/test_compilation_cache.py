"""JAX's persistent compilation cache (bayesvae.backends.compilation_cache): where it lives, that
it is switched on before and after JAX is imported, and that the CLI uses it."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bayesvae.backends.compilation_cache import default_cache_dir, enable_compilation_cache

ROOT = Path(__file__).resolve().parents[2]


def _python(code: str, env: dict[str, str]) -> str:
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, **env},
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"BAYESVAE_JAX_CACHE": "off"}, None),
        ({"BAYESVAE_JAX_CACHE": "No"}, None),
        ({"BAYESVAE_JAX_CACHE": "/somewhere/jax"}, Path("/somewhere/jax")),
        ({"BAYESVAE_JAX_CACHE": "", "XDG_CACHE_HOME": "/xdg"}, Path("/xdg/bayesvae/jax")),
    ],
)
def test_the_cache_folder_follows_the_environment(monkeypatch, env, expected):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert default_cache_dir() == expected


def test_off_turns_nothing_on(monkeypatch):
    monkeypatch.setenv("BAYESVAE_JAX_CACHE", "off")
    assert enable_compilation_cache() is None


@pytest.mark.parametrize("jax_first", [False, True])
def test_compiled_programs_are_written_to_the_folder(tmp_path, jax_first):
    """Before JAX is imported (environment variables) and after (jax.config): a jitted
    function's compiled program lands in the folder."""
    folder = tmp_path / "cache"
    code = (
        ("import jax\n" if jax_first else "")
        + "from bayesvae.backends.compilation_cache import enable_compilation_cache\n"
        + f"print(enable_compilation_cache({str(folder)!r}))\n"
        + "import jax, jax.numpy as jnp\n"
        + "jax.jit(lambda v: jnp.sin(v) * 2)(jnp.ones(3)).block_until_ready()\n"
        + "print(jax.config.jax_compilation_cache_dir)\n"
    )
    out = _python(code, {"BAYESVAE_JAX_CACHE": "off"}).split()
    assert out == [str(folder), str(folder)]
    assert any(folder.iterdir())


@pytest.mark.slow
def test_the_cli_reuses_compiled_nuts_across_processes(tmp_path):
    """Two runs of the same MCMC A/B test: the first fills the cache, the second reads it (no
    new entries for the sampler) and gives the same answer."""
    folder = tmp_path / "cache"
    command = (
        "import sys; from bayesvae.cli import main; sys.exit(main(['abtest', '--arm', "
        "'A=20/100', '--arm', 'B=30/100', '--method', 'mcmc', '--json']))"
    )
    first = json.loads(_python(command, {"BAYESVAE_JAX_CACHE": str(folder)}))
    entries = set(folder.iterdir())
    assert entries
    second = json.loads(_python(command, {"BAYESVAE_JAX_CACHE": str(folder)}))
    assert set(folder.iterdir()) == entries
    assert second["arms"] == first["arms"]
