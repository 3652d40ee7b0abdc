"""A small GPT (2 pre-LayerNorm blocks, causal self-attention, GELU MLP, tied embedding) in flax.linen:
value_and_grad of the next-token cross-entropy, the heart of a language model's training step."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from tinyjax import tiny, to_tinygrad

from .common import Case, rng


class Block(nn.Module):
  heads: int

  @nn.compact
  def __call__(self, x):
    mask = nn.make_causal_mask(jnp.ones(x.shape[:2]))
    x = x + nn.SelfAttention(num_heads=self.heads)(nn.LayerNorm()(x), mask=mask)
    h = nn.Dense(4 * x.shape[-1])(nn.LayerNorm()(x))
    return x + nn.Dense(x.shape[-1])(nn.gelu(h))


class GPT(nn.Module):
  vocab: int
  dim: int
  heads: int = 4
  blocks: int = 2

  @nn.compact
  def __call__(self, tokens):
    embed = nn.Embed(self.vocab, self.dim)
    pos = self.param("pos", nn.initializers.normal(0.02), (tokens.shape[1], self.dim))
    x = embed(tokens) + pos
    for _ in range(self.blocks): x = Block(self.heads)(x)
    return embed.attend(nn.LayerNorm()(x))


def lm_value_and_grad(quick):
  vocab, dim, seq, batch = (64, 64, 32, 4) if quick else (256, 128, 64, 8)
  model = GPT(vocab, dim)
  tokens = rng().integers(0, vocab, (batch, seq + 1), dtype="int32")
  params = jax.jit(model.init)(jax.random.key(0), tokens[:, :-1])

  def loss(params, tokens):
    logits = model.apply(params, tokens[:, :-1])
    return optax.softmax_cross_entropy_with_integer_labels(logits, tokens[:, 1:]).mean()
  f = jax.value_and_grad(loss)
  tiny_f, jax_f, params_tg, tokens_tg = tiny(f), jax.jit(f), *to_tinygrad((params, tokens))
  return Case(lambda: tiny_f(params_tg, tokens_tg), lambda: jax_f(params, tokens),
              size=f"vocab {vocab}, dim {dim}, {batch}x{seq} tokens")
