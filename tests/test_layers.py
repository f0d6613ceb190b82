"""One level per kind of thing, and data flows one way: no module imports a higher layer, not
even inside a function (checked on the source, every import statement)."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "bayesvae"

#: lowest first; a module may import its own layer and the ones before it
LAYERS = [
    ("bayesvae._version", "bayesvae._lazy"),
    ("bayesvae.data",),
    ("bayesvae.models",),
    ("bayesvae.backends",),
    ("bayesvae.runs",),  # run folders: models in, files out
    ("bayesvae.infer",),
    ("bayesvae.diagnostics",),
    ("bayesvae.report",),
    (  # workflows and estimators built on all of the above
        "bayesvae.abtest",
        "bayesvae.anomaly",
        "bayesvae.topics",
        "bayesvae.text_vae",
        "bayesvae.augment",
        "bayesvae.latent",
        "bayesvae.vae_run",
    ),
    ("bayesvae.cli", "bayesvae"),
]


def _layer(module: str) -> int:
    best = None
    for level, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if module == prefix or module.startswith(prefix + "."):
                if best is None or len(prefix) > best[1]:
                    best = (level, len(prefix))
    assert best is not None, module
    return best[0]


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(tree: ast.AST, module: str) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.append(node.module)
    return [name for name in found if name == "bayesvae" or name.startswith("bayesvae.")]


def test_no_module_imports_a_higher_layer():
    violations = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = _module_name(path)
        own = _layer(module)
        for imported in _imports(ast.parse(path.read_text()), module):
            if _layer(imported) > own:
                violations.append(f"{module} imports {imported}")
    assert violations == []
