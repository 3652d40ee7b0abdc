"""Greedy generation with a KV cache: a 2-layer decoder (plain jax.numpy, params in a dict) writes each new token's
keys and values into the cache with `.at[].set` (dynamic_update_slice) and attends over the cache under a mask, 32
steps in a lax.fori_loop, 4 sequences at once. The loop's trip count is static, so JAX emits a scan: tinyjax replays
the step's captured kernels 32 times."""
import jax
import jax.numpy as jnp
from jax import lax

from tinyjax import tiny, to_tinygrad

from .common import Case, normal, rng


def init(vocab, dim, layers, max_len):
  r = rng()
  p = {"embed": normal(r, vocab, dim, scale=1.0), "pos": normal(r, max_len, dim, scale=0.1)}
  def dense(n_in, n_out): return normal(r, n_in, n_out, scale=n_in ** -0.5)
  p["layers"] = [dict(qkv=dense(dim, 3 * dim), out=dense(dim, dim), up=dense(dim, 4 * dim), down=dense(4 * dim, dim))
                 for _ in range(layers)]
  return p


def norm(x): return (x - x.mean(-1, keepdims=True)) * lax.rsqrt(x.var(-1, keepdims=True) + 1e-5)


def make_generate(steps, heads):
  def generate(params, first_tokens):
    batch, (max_len, dim), layers = first_tokens.shape[0], params["pos"].shape, len(params["layers"])
    hd = dim // heads
    cache = jnp.zeros((2, layers, batch, max_len, heads, hd))
    tokens = jnp.zeros((batch, steps + 1), jnp.int32).at[:, 0].set(first_tokens)

    def step(i, carry):
      tokens, cache = carry
      x = params["embed"][tokens[:, i]] + params["pos"][i]
      for l, p in enumerate(params["layers"]):
        q, k, v = jnp.split(norm(x) @ p["qkv"], 3, axis=-1)
        cache = cache.at[0, l, :, i].set(k.reshape(batch, heads, hd)).at[1, l, :, i].set(v.reshape(batch, heads, hd))
        scores = jnp.einsum("bhd,bthd->bht", q.reshape(batch, heads, hd), cache[0, l]) / hd ** 0.5
        scores = jnp.where(jnp.arange(max_len) <= i, scores, -jnp.inf)   # only the positions written so far
        attended = jnp.einsum("bht,bthd->bhd", jax.nn.softmax(scores, axis=-1), cache[1, l]).reshape(batch, dim)
        x = x + attended @ p["out"]
        x = x + jax.nn.gelu(norm(x) @ p["up"]) @ p["down"]
      next_token = jnp.argmax(norm(x) @ params["embed"].T, axis=-1).astype(jnp.int32)
      return tokens.at[:, i + 1].set(next_token), cache
    return lax.fori_loop(0, steps, step, (tokens, cache))[0]
  return generate


def kv_cache_greedy(quick):
  steps, vocab, dim = 32, 256, (64 if quick else 128)
  params, first = init(vocab, dim, layers=2, max_len=steps), rng(1).integers(0, vocab, 4, dtype="int32")
  gen = make_generate(steps, heads=4)
  tiny_f, jax_f, args_tg = tiny(gen), jax.jit(gen), to_tinygrad((params, first))
  args_jx = jax.device_put((params, first))
  return Case(lambda: tiny_f(*args_tg), lambda: jax_f(*args_jx), size=f"dim {dim}")
