"""tinyjax: run JAX programs on tinygrad. `from tinyjax import tiny`."""
from . import ops, interpreter, shapes, reductions, conv  # noqa: F401  (each module registers its rules)
from .decorator import TinyKey, tiny
from .interpreter import UnsupportedPrimitiveError

__all__ = ["tiny", "TinyKey", "UnsupportedPrimitiveError"]
