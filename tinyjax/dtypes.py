"""One table between JAX (numpy) dtypes and tinygrad dtypes, written once."""
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


def is_float(dtype) -> bool: return jax.numpy.issubdtype(dtype, jax.numpy.floating)
def is_signed_int(dtype) -> bool: return jax.numpy.issubdtype(dtype, jax.numpy.signedinteger)
def is_unsigned_int(dtype) -> bool: return jax.numpy.issubdtype(dtype, jax.numpy.unsignedinteger)
def is_int(dtype) -> bool: return jax.numpy.issubdtype(dtype, jax.numpy.integer)


def physical_shape(aval) -> tuple:
  """The shape of the tensor that carries a value of this aval: a typed key adds its key-data dims (threefry: 2)."""
  return tuple(aval.shape) + (tuple(aval.dtype._impl.key_shape) if is_key_dtype(aval.dtype) else ())
