"""The rule families. Importing this package registers every rule into `tinyjax.ops.RULES`, in a fixed order (a
family may use another's rules as helpers: indexing uses elementwise's min/max, special uses elementwise's
transcendental functions)."""
from . import numerics, elementwise, shapes, reductions, conv, indexing, sorting, random, special, linalg  # noqa: F401
from . import control_flow, callbacks, calls  # noqa: F401
