"""Fitting the same model on the Pyro and the NumPyro backend, for the twins' agreement tests."""

from collections.abc import Callable
from typing import Any

import bayesvae

BACKENDS = ("pyro", "numpyro")


def fit_on_both_backends(make_model: Callable[[], Any], train: Any, **options: Any) -> dict:
    """``{backend: (model, fit result)}``: a fresh ``make_model()`` (the same seeded weights each
    time) trained by ``bayesvae.fit(model, train, **options)`` on each backend."""
    fitted = {}
    for backend in BACKENDS:
        model = make_model()
        result = bayesvae.fit(model, train, backend=backend, progress=False, **options)
        fitted[backend] = (model, result)
    return fitted
