"""Second backends: NumPyro (JAX) twins of the Pyro models."""
