"""Start-up cost: ``import bayesvae``, ``bayesvae --help`` and the A/B tests (exact, and NUTS on
the NumPyro backend) load none of the heavy libraries they do not use (each checked in a fresh
interpreter)."""

import json
import subprocess
import sys

import pytest

HEAVY = ("torch", "pyro", "jax", "numpyro", "arviz", "matplotlib", "sklearn", "jinja2")

PROBE = """
import json, sys
{code}
print(json.dumps(sorted(m for m in {heavy!r} if m in sys.modules)))
"""


def loaded_after(code: str) -> list[str]:
    """The heavy top-level modules a fresh interpreter has loaded after running ``code``."""
    out = subprocess.run(
        [sys.executable, "-c", PROBE.format(code=code, heavy=HEAVY)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def test_import_bayesvae_loads_no_heavy_library():
    assert loaded_after("import bayesvae") == []


def test_cli_help_loads_no_heavy_library():
    code = (
        "from bayesvae.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "assert 'scipy' not in sys.modules"
    )
    assert loaded_after(code) == []


def test_exact_ab_test_from_the_cli_needs_no_torch():
    code = "from bayesvae.cli import main\nmain(['abtest', '--arm', 'A=1/10', '--arm', 'B=2/10'])"
    assert loaded_after(code) == []


def test_exact_ab_test_builds_its_inference_data_on_demand():
    code = (
        "import bayesvae\n"
        "result = bayesvae.abtest({'A': (10, 100), 'B': (15, 100)})\n"
        "assert 'arviz' not in sys.modules\n"
        "idata = result.to_inference_data()\n"
        "assert idata.posterior['rate'].shape == (1, 50000, 2)\n"
        "assert result.inference_data is idata"
    )
    loaded = loaded_after(code)  # the asserts inside run in the fresh interpreter
    assert "arviz" in loaded
    assert "torch" not in loaded and "pyro" not in loaded


@pytest.mark.parametrize(
    ("name", "module"),
    [("fit", "torch"), ("AnomalyMixture", "sklearn"), ("VAE", "pyro")],
)
def test_names_load_their_dependencies_on_first_use(name, module):
    assert module in loaded_after(f"import bayesvae\nbayesvae.{name}")


def test_model_registry_lists_every_built_in_family():
    code = (
        "from bayesvae.models import MODEL_REGISTRY\n"
        "assert {'VAE', 'ProdLDA', 'AnomalyMixtureModel', 'RevenueABTest'} <= set(MODEL_REGISTRY)"
    )
    assert "torch" in loaded_after(code)


def test_ab_test_by_numpyro_nuts_needs_no_torch():
    code = (
        "import bayesvae\n"
        "result = bayesvae.abtest({'A': (10, 100), 'B': (15, 100)}, method='mcmc',\n"
        "                         num_warmup=100, num_samples=100, num_chains=2)\n"
        "assert result.inference_data.posterior['rate'].shape == (2, 100, 2)"
    )
    loaded = loaded_after(code)
    assert {"numpyro", "arviz"} <= set(loaded)
    assert "torch" not in loaded and "pyro" not in loaded
