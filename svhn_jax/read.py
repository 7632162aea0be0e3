"""`python -m svhn_jax.read`: the documented name for reading house numbers, the same program as
`python -m svhn_jax.predict` (see there), which reads what the run's task reads.

  python -m svhn_jax.read --workdir=runs/numbers photo1.png photo2.jpg
  python -m svhn_jax.read --workdir=runs/numbers --json --box=12,30,80,41 photo.png
"""

from svhn_jax import cli
from svhn_jax.predict import define_flags, main

__all__ = ["main"]

if __name__ == "__main__":
  define_flags()
  cli.run(main)
