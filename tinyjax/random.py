"""Typed PRNG keys. A key<impl> value is carried as its uint32 key data (for threefry: uint32[..., 2])."""
from .ops import primitive, register


@register(primitive("random_wrap_p"))
def random_wrap(data, *, impl): return data


@register(primitive("random_unwrap_p"))
def random_unwrap(keys): return keys
