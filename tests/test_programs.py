"""What real programs emit: small functions from jax.numpy (linalg included), jax.nn, jax.scipy.special and optax's
losses, each traced (not guessed) and checked against jax.jit with parity.check; plus the call-like and identity
primitives programs carry (device_put, sharding constraints, checkpoint names, optimization barriers, core.call,
empty2 from the gradient of a cond, tokens).

Inputs are fixed small arrays (the point is which primitives a real program needs and that each is right, not the
range of values: the rules' own test files generate those); tolerances are the float32 defaults unless a function
goes through a long chain of transcendental ops, where XLA's and tinygrad's approximations differ by a few ulp.
"""
import jax
import jax.numpy as jnp
import jax.scipy.special as jss
import numpy as np
import optax
import pytest
from jax import lax

from parity import check
from tinyjax import tiny
from tinyjax.rules import reductions

RNG = np.random.default_rng(0)
VEC = RNG.standard_normal(7).astype(np.float32)
MAT = RNG.standard_normal((4, 5)).astype(np.float32)
SQ = (RNG.standard_normal((4, 4)) + 4 * np.eye(4)).astype(np.float32)   # well conditioned
SPD = (SQ @ SQ.T + np.eye(4)).astype(np.float32)
RHS = RNG.standard_normal((4, 2)).astype(np.float32)
TALL = RNG.standard_normal((6, 3)).astype(np.float32)
POS = RNG.uniform(0.1, 3, (2, 5)).astype(np.float32)
PROB = RNG.uniform(0.05, 0.95, (2, 5)).astype(np.float32)
INT = RNG.integers(0, 5, 9).astype(np.int32)
LOGITS = RNG.standard_normal((3, 6)).astype(np.float32)
LABELS = np.array([1, 5, 0], np.int32)
ONE_HOT = np.eye(6, dtype=np.float32)[LABELS]
WITH_NAN = np.array([1.5, np.nan, -2.0, 0.0, np.inf, 3.0], np.float32)

# name -> (function, args, tolerance overrides)
PROGRAMS = {
  # ---- jax.numpy: linear algebra
  "linalg.solve": (jnp.linalg.solve, (SQ, RHS), {"rtol": 1e-4, "atol": 1e-5}),
  "linalg.inv": (jnp.linalg.inv, (SQ,), {"rtol": 1e-4, "atol": 1e-5}),
  "linalg.det": (jnp.linalg.det, (SQ,), {"rtol": 1e-4}),
  "linalg.slogdet": (jnp.linalg.slogdet, (SQ,), {"rtol": 1e-4, "atol": 1e-5}),
  "linalg.lstsq": (lambda a, b: jnp.linalg.lstsq(a, b)[0], (TALL, RNG.standard_normal((6, 2)).astype(np.float32)), {"rtol": 1e-3, "atol": 1e-4}),
  "linalg.pinv": (jnp.linalg.pinv, (TALL,), {"rtol": 1e-3, "atol": 1e-4}),
  "linalg.norm": (lambda a: (jnp.linalg.norm(a), jnp.linalg.norm(a, axis=1), jnp.linalg.norm(a, ord=1), jnp.linalg.norm(a, ord=jnp.inf)), (MAT,), {"rtol": 1e-5}),
  "linalg.norm_2": (lambda a: jnp.linalg.norm(a, ord=2), (MAT,), {"rtol": 1e-4}),
  "linalg.cholesky": (jnp.linalg.cholesky, (SPD,), {"rtol": 1e-4, "atol": 1e-5}),
  "linalg.eigvalsh": (jnp.linalg.eigvalsh, (SPD,), {"rtol": 1e-4, "atol": 1e-4}),
  "linalg.matrix_power": (lambda a: jnp.linalg.matrix_power(a, 3), (SQ,), {"rtol": 1e-5}),
  # ---- jax.numpy: indexing, selection, sorting, counting
  "fancy_indexing": (lambda x, i: (x[i], x[1:, ::2], x[:, jnp.array([0, 2, 4])], x[jnp.array([3, 0]), 1:3], x[i, i + 1], x[-1, None]), (MAT, np.array([2, 0, 3], np.int32)), {}),
  "index_update": (lambda x, i: (x.at[i].set(0.0), x.at[i, 1].add(1.0), x.at[:, 2].multiply(2.0), x.at[i].max(0.5)), (MAT, np.array([2, 0, 2], np.int32)), {}),
  "take_along_axis": (lambda x: jnp.take_along_axis(x, jnp.argsort(x, axis=1), axis=1), (MAT,), {}),
  "where": (lambda x: (jnp.where(x > 0, x, -x), jnp.where(jnp.isnan(x), 0.0, x), jnp.nonzero(x > 0, size=3, fill_value=-1)), (WITH_NAN,), {}),
  "cumsum": (lambda x: (jnp.cumsum(x), jnp.cumprod(x[:4]), jnp.cumsum(x.reshape(-1), dtype=jnp.int32)), (VEC,), {}),
  "sort_argsort": (lambda x: (jnp.sort(x), jnp.argsort(x), jnp.sort(x, descending=True), jnp.argsort(-x, stable=True)), (WITH_NAN,), {}),
  "unique": (lambda x: jnp.unique(x, size=6, fill_value=-1, return_counts=True, return_index=True), (INT,), {}),
  "histogram": (lambda x: jnp.histogram(x, bins=4, range=(-2.0, 2.0)), (VEC,), {}),
  "bincount": (lambda x: jnp.bincount(x, length=6), (INT,), {}),
  "searchsorted_digitize": (lambda x, v: (jnp.searchsorted(jnp.sort(x), v), jnp.digitize(v, jnp.array([-1.0, 0.0, 1.0]))), (VEC, np.array([-0.5, 0.1, 2.0], np.float32)), {}),
  "interp": (lambda x: jnp.interp(x, jnp.array([-1.0, 0.0, 2.0]), jnp.array([0.0, 1.0, 5.0])), (VEC,), {}),
  "einsum": (lambda a, b: (jnp.einsum("ij,kj->ik", a, b), jnp.einsum("ii->", a[:, :4]), jnp.einsum("ij,ij->j", a, b)), (MAT, MAT * 2), {"rtol": 1e-5}),
  "polyval_roots_free": (lambda c, x: (jnp.polyval(c, x), jnp.polyadd(c, c[:2]), jnp.polyder(c)), (np.array([1.0, -2.0, 0.5], np.float32), VEC), {"rtol": 1e-5}),
  "convolve": (lambda a, b: (jnp.convolve(a, b), jnp.convolve(a, b, mode="same"), jnp.correlate(a, b, mode="valid")), (VEC, np.array([1.0, -1.0, 0.5], np.float32)), {"rtol": 1e-5, "atol": 1e-6}),
  "percentile_median": (lambda x: (jnp.percentile(x, 30.0), jnp.median(x), jnp.quantile(x, jnp.array([0.1, 0.9]), axis=1), jnp.nanmedian(x)), (MAT,), {"rtol": 1e-5}),
  "statistics": (lambda x: (jnp.mean(x, 0), jnp.var(x, 1), jnp.std(x), jnp.nanmean(x), jnp.average(x, axis=1, weights=jnp.arange(5.0)), jnp.ptp(x)), (MAT,), {"rtol": 1e-5}),
  "nan_reductions": (lambda x: (jnp.nansum(x), jnp.nanmax(x), jnp.nanargmin(x), jnp.argmax(x), jnp.max(x), jnp.any(jnp.isinf(x))), (WITH_NAN,), {}),
  "shapes": (lambda x: (jnp.roll(x, 2, axis=1), jnp.flip(x), jnp.tile(x[:2], (2, 1)), jnp.repeat(x, 2, axis=0), jnp.pad(x, ((1, 0), (2, 1)), mode="reflect"), jnp.tril(x), jnp.stack([x, x]), jnp.split(x, [1, 3], axis=1)), (MAT,), {}),
  "clip_round": (lambda x: (jnp.clip(x, -0.5, 0.5), jnp.round(x * 3), jnp.floor_divide(x, 0.3), jnp.mod(x, 0.7), jnp.sign(x), jnp.heaviside(x, 0.5)), (VEC,), {"rtol": 1e-5, "atol": 1e-6}),
  "outer_kron_cross": (lambda a, b: (jnp.outer(a, b), jnp.kron(a[:2], b[:3]), jnp.cross(a[:3], b[:3]), jnp.trace(jnp.outer(a, b))), (VEC, VEC[::-1].copy()), {"rtol": 1e-5}),
  "integer_ops": (lambda x: (x // 3, x % 3, jnp.left_shift(x, 2), x ** 2, jnp.gcd(x, 6), jnp.lcm(x, 4)), (INT,), {}),
  "diff_gradient_trapezoid": (lambda x: (jnp.diff(x), jnp.diff(x, n=2), jnp.gradient(x), jnp.trapezoid(x)), (VEC,), {"rtol": 1e-5, "atol": 1e-6}),
  "meshgrid_linspace": (lambda a: (jnp.linspace(0.0, a, 5), jnp.meshgrid(jnp.arange(3.0), jnp.arange(2.0)), jnp.logspace(0.0, 1.0, 4), jnp.eye(3, k=1), jnp.tri(3)), (np.float32(2.0),), {"rtol": 1e-5}),
  # ---- jax.nn
  "nn.softmax": (lambda x: (jax.nn.softmax(x), jax.nn.softmax(x, axis=0)), (LOGITS,), {}),
  "nn.log_softmax": (jax.nn.log_softmax, (LOGITS,), {"rtol": 1e-5, "atol": 1e-6}),
  "nn.gelu": (lambda x: (jax.nn.gelu(x), jax.nn.gelu(x, approximate=False)), (LOGITS,), {"rtol": 1e-5, "atol": 1e-6}),
  "nn.silu_relu": (lambda x: (jax.nn.silu(x), jax.nn.relu(x), jax.nn.relu6(x * 4), jax.nn.leaky_relu(x), jax.nn.elu(x), jax.nn.softplus(x), jax.nn.celu(x), jax.nn.selu(x), jax.nn.hard_tanh(x), jax.nn.glu(x)), (LOGITS,), {"rtol": 1e-5, "atol": 1e-6}),
  "nn.one_hot": (lambda i: (jax.nn.one_hot(i, 6), jax.nn.one_hot(i, 4, dtype=jnp.int32)), (LABELS,), {}),
  "nn.logsumexp": (lambda x: (jax.nn.logsumexp(x), jax.nn.logsumexp(x, axis=1), jax.nn.logsumexp(x, axis=0, b=jnp.arange(6.0))), (LOGITS,), {"rtol": 1e-5, "atol": 1e-6}),
  "nn.standardize": (lambda x: jax.nn.standardize(x, axis=1), (LOGITS,), {"rtol": 1e-5, "atol": 1e-5}),
  "nn.sigmoids": (lambda x: (jax.nn.sigmoid(x), jax.nn.log_sigmoid(x), jax.nn.hard_sigmoid(x), jax.nn.sparse_plus(x)), (LOGITS,), {"rtol": 1e-5, "atol": 1e-6}),
  "nn.dot_product_attention": (lambda q, k, v: jax.nn.dot_product_attention(q, k, v, is_causal=True), (RNG.standard_normal((1, 4, 2, 8)).astype(np.float32),) * 3, {"rtol": 1e-5, "atol": 1e-6}),
  # ---- jax.scipy.special
  "special.logsumexp": (lambda x: (jss.logsumexp(x), jss.logsumexp(x, axis=1, return_sign=True)), (LOGITS,), {"rtol": 1e-5, "atol": 1e-6}),
  "special.xlogy_xlog1py_entr": (lambda x, y: (jss.xlogy(x, y), jss.xlog1py(x, y), jss.entr(y), jss.xlogy(0.0 * x, y)), (LOGITS, POS.reshape(-1)[:6].reshape(1, 6)), {"rtol": 1e-5, "atol": 1e-6}),
  "special.gammaln_betaln": (lambda a, b: (jss.gammaln(a), jss.betaln(a, b), jss.digamma(a)), (POS, POS[::-1].copy()), {"rtol": 1e-4, "atol": 1e-5}),
  "special.expit_logit": (lambda p, x: (jss.expit(x), jss.logit(p)), (PROB, LOGITS), {"rtol": 1e-5, "atol": 1e-6}),
  "special.ndtr_ndtri": (lambda p, x: (jss.ndtr(x), jss.ndtri(p), jss.log_ndtr(x)), (PROB, LOGITS), {"rtol": 1e-4, "atol": 1e-5}),
  "special.erfcx": (jss.erfcx, (LOGITS,), {"rtol": 1e-4, "atol": 1e-5}),
  "special.i0_i1": (lambda x: (jss.i0(x), jss.i1(x), jss.i0e(x), jss.i1e(x)), (LOGITS,), {"rtol": 1e-4, "atol": 1e-5}),
  "special.erf_erfinv": (lambda x, p: (jss.erf(x), jss.erfc(x), jss.erfinv(2 * p - 1)), (LOGITS, PROB), {"rtol": 1e-4, "atol": 1e-5}),
  # ---- optax losses
  "optax.softmax_cross_entropy": (lambda l, y, i: (optax.softmax_cross_entropy(l, y), optax.softmax_cross_entropy_with_integer_labels(l, i)), (LOGITS, ONE_HOT, LABELS), {"rtol": 1e-5, "atol": 1e-6}),
  "optax.sigmoid_binary_cross_entropy": (optax.sigmoid_binary_cross_entropy, (LOGITS, (LOGITS > 0).astype(np.float32)), {"rtol": 1e-5, "atol": 1e-6}),
  "optax.huber_l2_log_cosh": (lambda p, t: (optax.huber_loss(p, t), optax.l2_loss(p, t), optax.log_cosh(p, t), optax.squared_error(p, t)), (LOGITS, LOGITS[::-1].copy()), {"rtol": 1e-5, "atol": 1e-6}),
  "optax.cosine_similarity": (lambda a, b: (optax.cosine_similarity(a, b), optax.cosine_distance(a, b)), (LOGITS, LOGITS[::-1].copy()), {"rtol": 1e-5, "atol": 1e-6}),
  "optax.hinge_kl": (lambda l, y, p: (optax.hinge_loss(l, 2 * y - 1), optax.kl_divergence(jax.nn.log_softmax(l), p)), (LOGITS, (LOGITS > 0).astype(np.float32), jax.nn.softmax(LOGITS[::-1])), {"rtol": 1e-5, "atol": 1e-6}),
  "optax.ctc_loss": (lambda l, y: optax.ctc_loss(l, jnp.zeros(l.shape[:2]), y, jnp.zeros(y.shape)), (RNG.standard_normal((2, 5, 4)).astype(np.float32), np.array([[1, 2], [3, 3]], np.int32)), {"rtol": 1e-4, "atol": 1e-4}),
  # ---- gradients of a few of them (what a training step differentiates)
  "grad.softmax_cross_entropy": (jax.grad(lambda l, i: optax.softmax_cross_entropy_with_integer_labels(l, i).mean()), (LOGITS, LABELS), {"rtol": 1e-5, "atol": 1e-6}),
  "grad.logsumexp_norm": (jax.grad(lambda x: jax.nn.logsumexp(x) + jnp.linalg.norm(x)), (LOGITS,), {"rtol": 1e-5, "atol": 1e-6}),
  "grad.sort_take": (jax.grad(lambda x, i: (jnp.sort(x, axis=1)[:, -2:] ** 2).sum() + (x[i] * x).sum()), (MAT, np.array([1, 3, 0, 2], np.int32)), {"rtol": 1e-5}),
  "grad.cond_with_residuals": (jax.grad(lambda x: lax.cond(x.sum() > 0, lambda x: jnp.sin(x).sum(), lambda x: (x * x * x).sum(), x)), (VEC,), {"rtol": 1e-5, "atol": 1e-6}),   # emits empty2
  "grad.cond_other_branch": (jax.grad(lambda x: lax.cond(x.sum() > 0, lambda x: jnp.sin(x).sum(), lambda x: (x * x * x).sum(), x)), (-np.abs(VEC),), {"rtol": 1e-5, "atol": 1e-6}),
}


@pytest.mark.parametrize("name", PROGRAMS)
def test_program(name):
  fn, args, tol = PROGRAMS[name]
  check(fn, *args, **tol)


def test_ctc_loss_with_its_log_probabilities_fused_into_the_contraction(monkeypatch):
  """The graph tinyjax gave optax.ctc_loss before numerics.computed_once wrote a contraction's transcendental operand
  to a buffer: the log-probabilities fused into the one-hot contraction. On it, tinygrad's reduce collapse recursed
  until 'infinite loop in graph_rewrite' without the reduce-collapse patch (the float guards stay off inside it)."""
  monkeypatch.setattr(reductions, "computed_once", lambda x: x)
  fn, args, tol = PROGRAMS["optax.ctc_loss"]
  check(fn, *args, **tol)


def test_programs_need_no_missing_rule():
  """Every primitive these programs emit (sub-jaxprs included) has a rule."""
  import tinyjax.ops as ops
  from tinyjax.coverage import _equations
  missing = {}
  for name, (fn, args, _) in PROGRAMS.items():
    for eqn, _ in _equations(jax.make_jaxpr(fn)(*args).jaxpr):
      if eqn.primitive not in ops.RULES: missing.setdefault(eqn.primitive.name, name)
  assert not missing, missing


# ---- call-like and identity primitives ------------------------------------------------------------------------

X = np.arange(6, dtype=np.float32).reshape(2, 3)
I = np.arange(3, dtype=np.int32)


def test_placement_and_sharding_annotations_are_identities():
  one_device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  check(lambda x, i: jax.device_put((x * 2, i)), X, I)                                # device_put, two results
  check(lambda x: lax.with_sharding_constraint(x + 1, one_device) * 2, X)            # sharding_constraint
  check(lambda x: jax.device_put(x, one_device) - 1, X)


def test_checkpoint_name_and_optimization_barrier():
  from jax.ad_checkpoint import checkpoint_name
  check(lambda x: checkpoint_name(x * 2, "hidden") + 1, X)                           # name
  check(lambda x, i: lax.optimization_barrier((x, i + 1)), X, I)                     # optimization_barrier
  policy = jax.checkpoint_policies.save_only_these_names("hidden")
  loss = jax.checkpoint(lambda x: jnp.sin(checkpoint_name(x * 2, "hidden")).sum(), policy=policy)
  check(jax.grad(loss), X)                                                             # remat with names


def test_core_call_and_composite():
  from jax._src import api_util, core, linear_util as lu
  def body(x, y): return [x * 2 + y, y]
  def called(x, y):
    fun = lu.wrap_init(body, debug_info=api_util.debug_info("call", body, (x, y), {}))
    return core.call_p.bind(x, y, subfuns=(fun,))
  check(lambda x: lax.composite(lambda x: (x * 2 + 1, jnp.tanh(x)), name="my.op")(x), X)
  try: jaxpr = jax.make_jaxpr(called)(X, X)
  except TypeError: pytest.skip("core.call_p is bound differently in this JAX (jax 0.11 wants call_jaxpr)")
  assert "call[" in str(jaxpr)
  check(called, X, X)


def test_empty_values_and_tokens():
  """empty2 (what autodiff's empty_like broadcasts) and lax.empty are zeros, as XLA lowers them; tokens are
  placeholders that programs thread through and drop."""
  from jax._src import core
  from jax._src.lax import lax as lax_internal
  check(lambda x: lax_internal.empty2(jnp.float32, memory_space=core.MemorySpace.Device) + x, X)
  check(lambda x: (lax_internal.empty((2, 3), jnp.int32) * 0 + 1, x), X)
  check(lambda x: (lax.after_all(lax.create_token(), lax.create_token()), x + 1)[1], X)


def test_tile_and_random_clone():
  check(lambda x: (jnp.tile(x, (2, 1, 3)), jnp.tile(x, 2), jnp.tile(x, (0, 2))), X)
  key = jax.random.key(3)
  check(lambda k: jax.random.uniform(jax.random.clone(k), (3,)), key)
  check(lambda k: jnp.tile(k, 2), jax.random.split(key, 2))


def test_unsupported_primitives_raise_typed_errors():
  """What has no rule says so before a wrong answer can happen: a typed error naming the primitive (eig's complex
  outputs are refused first, by dtype)."""
  x = np.ones((3, 3), np.float32)
  for fn, prim in [(lambda x: lax.rng_uniform(x, x + 1, (2,)), "rng_uniform"), (lambda x: jnp.linalg.eigvals(x), "complex"),
                   (lambda x: lax.linalg.schur(x), "schur")]:
    with pytest.raises((NotImplementedError, TypeError), match=prim):
      tiny(fn)(x[0, 0] if prim == "rng_uniform" else x)
