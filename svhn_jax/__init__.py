"""svhn_jax: the Keras SVHN digit study as a functional JAX/Flax codebase."""

__version__ = "0.1.0"
