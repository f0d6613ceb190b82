"""NumPyro twins of bayesvae's Pyro models. Importing this package needs jax and numpyro."""

try:
    import numpyro  # noqa: F401
except ImportError as error:  # pragma: no cover - exercised only without the dependency
    raise ImportError(
        "the NumPyro backend needs jax and numpyro: pip install 'numpyro>=0.15' jax"
    ) from error
