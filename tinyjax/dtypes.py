"""Every dtype table, written once: JAX (numpy) dtypes to tinygrad's and back, the integer of a dtype's width, the
float formats' constants, and the accumulator of half-precision floats."""
import jax
import numpy as np
from tinygrad import dtypes as tg

_JAX_TO_TINY = {
  np.dtype(np.bool_): tg.bool,
  np.dtype(np.int8): tg.int8, np.dtype(np.int16): tg.int16, np.dtype(np.int32): tg.int32, np.dtype(np.int64): tg.int64,
  np.dtype(np.uint8): tg.uint8, np.dtype(np.uint16): tg.uint16, np.dtype(np.uint32): tg.uint32, np.dtype(np.uint64): tg.uint64,
  np.dtype(jax.numpy.bfloat16): tg.bfloat16, np.dtype(np.float16): tg.float16,
  np.dtype(np.float32): tg.float32, np.dtype(np.float64): tg.float64,
}
_TINY_TO_JAX = {v: k for k, v in _JAX_TO_TINY.items()}


def is_key_dtype(dtype) -> bool:
  return jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key)


def to_tiny(dtype):
  """The tinygrad dtype for a JAX dtype; a typed key is carried as its uint32 key data."""
  if is_key_dtype(dtype): return tg.uint32
  try: return _JAX_TO_TINY[np.dtype(dtype)]
  except (KeyError, TypeError):
    raise TypeError(f"tinyjax: dtype {dtype} has no tinygrad equivalent (tinygrad has no complex or float8 arithmetic); "
                    f"supported: {', '.join(sorted(str(d) for d in _JAX_TO_TINY))}") from None


def to_jax(dtype) -> np.dtype:
  try: return _TINY_TO_JAX[dtype]
  except KeyError: raise TypeError(f"tinyjax: tinygrad dtype {dtype} has no JAX equivalent") from None


def physical_shape(aval) -> tuple:
  """The shape of the tensor that carries a value of this aval: a typed key adds its key-data dims (threefry: 2)."""
  return tuple(aval.shape) + (tuple(aval.dtype._impl.key_shape) if is_key_dtype(aval.dtype) else ())


# ---- tinygrad dtypes by width: the integer views that bit tricks work in ----------------------------------------

_UINT_OF_WIDTH = {1: tg.uint8, 2: tg.uint16, 4: tg.uint32, 8: tg.uint64}
_INT_OF_WIDTH = {1: tg.int8, 2: tg.int16, 4: tg.int32, 8: tg.int64}


def same_width_uint(dtype):
  """The unsigned integer tinygrad dtype as wide as `dtype` (itself for an unsigned one): the view in which C wraps
  arithmetic modulo 2^n and a float's bits are plain bits."""
  return _UINT_OF_WIDTH[dtype.itemsize]


def same_width_int(dtype):
  """The signed integer tinygrad dtype as wide as `dtype`: the view whose sign is a float's sign bit."""
  return _INT_OF_WIDTH[dtype.itemsize]


# ---- float formats -----------------------------------------------------------------------------------------------

QUIET_NAN = {tg.float16: 0x7E00, tg.bfloat16: 0x7FC0, tg.float32: 0x7FC00000, tg.float64: 0x7FF8000000000000}   # bits
EXPONENT_MASK = {tg.float16: 0x7C00, tg.bfloat16: 0x7F80, tg.float32: 0x7F800000, tg.float64: 0x7FF0000000000000}
HALF_FLOATS = (tg.float16, tg.bfloat16)


def accumulator(dtype):
  """What XLA (CPU/GPU) computes and accumulates a dtype in: float32 for float16/bfloat16, else the dtype itself."""
  return tg.float32 if dtype in HALF_FLOATS else dtype
