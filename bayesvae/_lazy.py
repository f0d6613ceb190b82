"""Lazy package attributes (PEP 562): a package names what it exports and where each name lives,
and the defining module is imported on first access. ``import bayesvae`` therefore costs
milliseconds; torch, Pyro, scikit-learn and the rest load when a name that needs them is used.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(
    package: str, exports: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package``. ``exports`` maps a public name to
    ``"module:attribute"`` (a name defined in that module) or ``"module"`` (the module itself).
    A resolved name is cached on the package, so each import happens once."""

    def __getattr__(name: str) -> Any:
        try:
            target = exports[name]
        except KeyError:
            raise AttributeError(f"module {package!r} has no attribute {name!r}") from None
        module_name, _, attribute = target.partition(":")
        module = importlib.import_module(module_name)
        value = getattr(module, attribute) if attribute else module
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(exports))

    return __getattr__, __dir__
