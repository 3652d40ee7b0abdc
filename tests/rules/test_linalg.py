"""Parity of the linear algebra rules (tinyjax/rules/linalg.py) with jax.jit: cholesky, triangular_solve, lu, qr
(geqrf/householder_product), eigh, svd, tridiagonal_solve, custom_linear_solve, and what jnp.linalg builds from them
(solve, inv, det, slogdet, lstsq, pinv, norm, matrix_power, cond, matrix_rank), plus Flax's orthogonal initializer.

Inputs are well conditioned by construction (diagonally dominant X + n*I, or X X^T + n*I), so rtol 1e-4 compares
algorithms that round differently (LAPACK's blocked ones against our unblocked ones). Results whose sign is not
defined (eigenvectors, singular vectors) are compared through |V^T V_jax| = I and the reconstruction.
Building a program dominates the time, so the tiny functions live at module level (their program cache is shared by
all examples) and the generated shapes come from a small set.
"""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, strategies as st
from hypothesis.extra import numpy as hnp
from jax import lax

from parity import assert_same, to_numpy
from tinyjax import tiny

TOL = dict(rtol=1e-4, atol=1e-5)
SIDES = [0, 1, 3, 4]
BATCHES = [(), (2,)]


@functools.cache
def _tiny(fn): return tiny(fn)


def both(fn, *args):
  """(tiny's outputs, jax.jit's outputs) as numpy pytrees; the tiny program is cached per fn."""
  want = jax.jit(fn)(*args)
  got = _tiny(fn)(*args)
  return jax.tree.map(to_numpy, got, is_leaf=lambda x: not isinstance(x, (tuple, list, dict))), jax.tree.map(np.asarray, want)


def check(fn, *args, rtol=TOL["rtol"], atol=TOL["atol"]):
  want = jax.jit(fn)(*args)
  got = _tiny(fn)(*args)
  assert_same(got, want, rtol, atol)


# entries: 0 or 2^-10 <= |x| <= 1 (nothing near the subnormal range: XLA CPU flushes subnormals to zero, tinygrad's C
# code does not, and products of tiny entries would differ there)
ENTRIES = st.one_of(st.just(0.0), st.tuples(st.floats(2.0 ** -10, 1, width=32), st.sampled_from([1.0, -1.0])).map(lambda p: p[0] * p[1]))


@st.composite
def square(draw, kind="dominant", sides=SIDES, dtype=np.float32):
  """A batch of n x n matrices: X + n I (diagonally dominant), X X^T + n I (positive definite), X + X^T, X itself
  ("plain"), or X plus a fixed dense pattern ("generic"): the Householder reductions are discontinuous where a column
  cancels to zero in exact arithmetic (LAPACK reflects its rounding noise, we may get an exact 0), so their parity is
  only defined on matrices away from such cancellations; their exact-zero columns have a test of their own."""
  n, batch = draw(st.sampled_from(sides)), draw(st.sampled_from(BATCHES))
  x = draw(hnp.arrays(dtype, batch + (n, n), elements=ENTRIES))
  eye = np.eye(n, dtype=dtype)
  if kind == "spd": return x @ np.swapaxes(x, -1, -2) + n * eye
  if kind == "sym": return x + np.swapaxes(x, -1, -2)
  if kind == "generic": return x + (0.1 * np.sin(1.0 + np.arange(n * n))).reshape(n, n).astype(dtype)
  return x + n * eye if kind == "dominant" else x


@st.composite
def rect(draw, sides=(1, 3, 4)):
  m, n, batch = draw(st.sampled_from(sides)), draw(st.sampled_from(sides)), draw(st.sampled_from(BATCHES))
  return draw(hnp.arrays(np.float32, batch + (m, n), elements=ENTRIES))


# ---- cholesky, triangular_solve, lu and what jnp.linalg makes of them -----------------------------------------------

def _cholesky(a): return lax.linalg.cholesky(a)
def _cholesky_raw(a): return lax.linalg.cholesky(a, symmetrize_input=False)


@given(square("spd"))
def test_cholesky(a):
  check(_cholesky, a)
  check(jnp.linalg.cholesky, a)


def test_cholesky_not_positive_definite():
  """potrf fails: NaN on and below the diagonal, zeros above, as jax.jit; only the lower triangle is read."""
  check(_cholesky_raw, np.array([[[1, 2], [2, 1]], [[4, 99], [2, 5]]], np.float32))


TRIANGULAR = [dict(left_side=ls, lower=lo, transpose_a=t, unit_diagonal=u)
              for ls in (True, False) for lo in (True, False) for t in (True, False) for u in (False, True)]


@functools.cache
def _triangular(left_side, lower, transpose_a, unit_diagonal):
  return lambda a, b: lax.linalg.triangular_solve(a, b, left_side=left_side, lower=lower, transpose_a=transpose_a,
                                                  unit_diagonal=unit_diagonal)


@given(a=square(sides=[1, 4]), flags=st.sampled_from(TRIANGULAR), cols=st.sampled_from([1, 3]), data=st.data())
def test_triangular_solve(a, flags, cols, data):
  n = a.shape[-1]
  shape = a.shape[:-2] + ((n, cols) if flags["left_side"] else (cols, n))
  b = data.draw(hnp.arrays(np.float32, shape, elements=ENTRIES))
  check(_triangular(**flags), a, b)


@pytest.mark.parametrize("flags", TRIANGULAR, ids=lambda f: "-".join(k for k, v in f.items() if v) or "plain")
def test_triangular_solve_all_params(flags):
  rng = np.random.default_rng(1)
  a = rng.standard_normal((3, 3)).astype(np.float32) + 3 * np.eye(3, dtype=np.float32)
  b = rng.standard_normal((3, 2) if flags["left_side"] else (2, 3)).astype(np.float32)
  check(_triangular(**flags), a, b)


def _lu(a): return lax.linalg.lu(a)


@given(rect(sides=(0, 1, 3, 4)))
def test_lu(a):
  """Pivots and permutation are integers, compared exactly: the pivot is the first row of largest |a|."""
  check(_lu, a)


def _pivots_to_permutation(pivots): return lax.linalg.lu_pivots_to_permutation(pivots, 5)


def test_lu_pivots_to_permutation():
  check(_pivots_to_permutation, np.array([[2, 3, 2, 4], [0, 1, 4, 3]], np.int32))


def test_lu_singular_and_ties():
  a = np.array([[[0, 1, 2], [0, 3, 4], [0, 5, 6]],       # a zero column: no scaling, no NaN
                [[1, 2, 3], [-1, 5, 1], [1, 0, 7]]],     # ties of |a|: the first one pivots
               np.float32)
  check(_lu, a)


@given(square())
def test_solve_inv_det_slogdet(a):
  b = np.arange(a.shape[-1] * 2, dtype=np.float32).reshape(a.shape[-1], 2)
  b = np.broadcast_to(b, a.shape[:-1] + (2,)).copy()
  check(jnp.linalg.solve, a, b)
  check(jnp.linalg.inv, a)
  check(jnp.linalg.det, a, rtol=1e-4, atol=1e-4)
  check(jnp.linalg.slogdet, a)


def _matrix_powers(a): return jnp.linalg.matrix_power(a, 3), jnp.linalg.matrix_power(a, -2)


def test_matrix_power_and_vector_solve():
  rng = np.random.default_rng(2)
  a = rng.standard_normal((4, 4)).astype(np.float32) + 4 * np.eye(4, dtype=np.float32)
  check(_matrix_powers, a)
  check(jnp.linalg.solve, a, rng.standard_normal(4).astype(np.float32))
  check(lambda a, b: jax.scipy.linalg.cho_solve((jnp.linalg.cholesky(a), True), b), a @ a.T, np.ones((4, 2), np.float32))
  check(jax.scipy.linalg.lu_factor, a)


# ---- qr -------------------------------------------------------------------------------------------------------

def _qr_modes(a): return jnp.linalg.qr(a), jnp.linalg.qr(a, mode="complete"), jnp.linalg.qr(a, mode="r")


@given(rect(sides=(0, 1, 3, 4)))
def test_qr(a):
  """Householder reflections as LAPACK's geqrf/orgqr: Q and R match jax.jit with their signs."""
  check(_qr_modes, a)


def _geqrf_householder(a):
  from jax._src.lax.linalg import geqrf, householder_product
  r, taus = geqrf(a)
  return r, taus, householder_product(r, taus)


def test_geqrf_householder_product_and_zero_columns():
  a = np.array([[[0, 1], [0, 2], [0, 3]], [[2, 0], [0, 0], [0, 0]], [[-1, 4], [1, 5], [0, 6]]], np.float32)
  check(_geqrf_householder, a)
  check(_qr_modes, a)


def _qr_pivoting(a): return jax.scipy.linalg.qr(a, pivoting=True), jax.scipy.linalg.qr(a, pivoting=True, mode="economic")


def _geqp3(a, jpvt):
  from jax._src.lax.linalg import geqp3
  return geqp3(a, jpvt)


def test_qr_pivoting():
  """geqp3: the first remaining column of largest norm pivots; columns marked in jpvt go first (LAPACK's order)."""
  rng = np.random.default_rng(3)
  check(_qr_pivoting, rng.standard_normal((2, 5, 4)).astype(np.float32))
  check(_qr_pivoting, rng.standard_normal((3, 5)).astype(np.float32))
  a = np.array([[1, 5, 2], [2, 1, 3], [0, 2, 1], [1, 1, 1]], np.float32)
  check(_geqp3, a, np.array([0, 0, 1], np.int32))
  check(_geqp3, a, np.array([0, 0, 0], np.int32))


def _ormqr_symmetric_product(a, c):
  from jax._src.lax.linalg import geqrf, ormqr, symmetric_product
  r, taus = geqrf(a)
  return (ormqr(r, taus, c, left=True, transpose=False), ormqr(r, taus, c, left=True, transpose=True),
          ormqr(r, taus, c.T, left=False, transpose=False), ormqr(r, taus, c.T, left=False, transpose=True),
          symmetric_product(a, c[:, :3] @ c[:, :3].T, alpha=2.0, beta=0.5))


def test_ormqr_symmetric_product():
  rng = np.random.default_rng(7)
  check(_ormqr_symmetric_product, rng.standard_normal((5, 3)).astype(np.float32), rng.standard_normal((5, 3)).astype(np.float32))


def _orthogonal_init(key): return jax.nn.initializers.orthogonal()(key, (2, 6))


def test_orthogonal_initializer():
  """A wide matrix (the initializer transposes it for the qr); Flax's Dense below covers a tall one."""
  check(_orthogonal_init, jax.random.key(0))


def test_flax_orthogonal_dense():
  import flax.linen as nn
  model = nn.Dense(4, kernel_init=nn.initializers.orthogonal())
  check(lambda key: model.init(key, jnp.ones((1, 6))), jax.random.key(3))


# ---- eigh, svd (signs of vectors are free: compared through |V^T V_jax| and the reconstruction) ----------------

def assert_same_columns(got, want, atol):
  """Columns of got equal those of want up to a sign each."""
  if got.size == 0: return
  overlap = np.abs(np.einsum("...ij,...ik->...jk", got, want))
  np.testing.assert_allclose(overlap, np.broadcast_to(np.eye(got.shape[-1]), overlap.shape), atol=atol)


def _eigh(a): return jnp.linalg.eigh(a)


@given(square("sym", sides=[0, 1, 2, 3, 5]))
def test_eigh(a):
  (w, v), (w_jax, v_jax) = both(_eigh, a)
  assert w.dtype == w_jax.dtype and v.shape == v_jax.shape
  scale = max(1.0, np.abs(a).max(initial=0))
  np.testing.assert_allclose(w, w_jax, rtol=1e-4, atol=1e-5 * scale)
  np.testing.assert_allclose(v @ (w[..., None] * np.swapaxes(v, -1, -2)), a, atol=1e-4 * scale)   # V diag(w) V^T = A
  np.testing.assert_allclose(np.swapaxes(v, -1, -2) @ v, np.broadcast_to(np.eye(a.shape[-1]), a.shape), atol=1e-5)
  gaps = np.diff(w_jax, axis=-1)
  if a.shape[-1] < 2 or gaps.min() > 1e-2 * scale: assert_same_columns(v, v_jax, atol=1e-3)


def test_eigh_lower_upper_and_repeated():
  """eigh reads one triangle (lower=True/False); a repeated eigenvalue (the identity) and a diagonal input."""
  a = np.array([[2, 1, 0], [99, 3, 1], [-99, 1, 4]], np.float32)
  for lower in (True, False):
    fn = _eigh_lower if lower else _eigh_upper
    (v, w), (v_jax, w_jax) = both(fn, a)
    np.testing.assert_allclose(w, w_jax, rtol=1e-5, atol=1e-5)
    assert_same_columns(v, v_jax, atol=1e-4)
  (w, v), (w_jax, _) = both(_eigh, np.stack([np.eye(4, dtype=np.float32), np.diag([3, 1, 2, 1]).astype(np.float32)]))
  np.testing.assert_allclose(w, w_jax, atol=1e-6)
  np.testing.assert_allclose(np.swapaxes(v, -1, -2) @ v, np.broadcast_to(np.eye(4), v.shape), atol=1e-6)


def _eigh_lower(a): return lax.linalg.eigh(a, lower=True, symmetrize_input=False)
def _eigh_upper(a): return lax.linalg.eigh(a, lower=False, symmetrize_input=False)


def _svd(a): return jnp.linalg.svd(a, full_matrices=False)
def _svd_full(a): return jnp.linalg.svd(a)
def _svdvals(a): return jnp.linalg.svd(a, compute_uv=False)


def check_svd(a, full):
  (u, s, vt), (u_jax, s_jax, vt_jax) = both(_svd_full if full else _svd, a)
  assert u.shape == u_jax.shape and s.shape == s_jax.shape and vt.shape == vt_jax.shape and s.dtype == s_jax.dtype
  scale = max(1.0, np.abs(a).max(initial=0))
  np.testing.assert_allclose(s, s_jax, rtol=1e-4, atol=1e-5 * scale)
  k = s.shape[-1]
  np.testing.assert_allclose((u[..., :, :k] * s[..., None, :]) @ vt[..., :k, :], a, atol=1e-4 * scale)
  for q in (u, np.swapaxes(vt, -1, -2)):   # orthonormal columns (all of them with full_matrices)
    np.testing.assert_allclose(np.swapaxes(q, -1, -2) @ q, np.broadcast_to(np.eye(q.shape[-1]), q.shape[:-2] + (q.shape[-1],) * 2), atol=1e-5)
  gaps = -np.diff(s_jax, axis=-1)
  if k and (k < 2 or gaps.min() > 1e-2 * scale) and s_jax.min() > 1e-2 * scale:
    assert_same_columns(u[..., :k], u_jax[..., :k], atol=1e-3)
    assert_same_columns(np.swapaxes(vt, -1, -2)[..., :k], np.swapaxes(vt_jax, -1, -2)[..., :k], atol=1e-3)


@given(rect(sides=(0, 1, 3, 4)), st.booleans())
def test_svd(a, full):
  check_svd(a, full)
  check(_svdvals, a, atol=1e-5 * max(1.0, np.abs(a).max(initial=0)))


def test_svd_rank_deficient():
  """Zero singular values still give orthonormal U (from a Householder QR of A V) and the exact zero."""
  a = np.array([[1, 2, 3], [2, 4, 6], [0, 0, 0], [1, 1, 1]], np.float32)
  check_svd(a, True)
  check_svd(a.T.copy(), False)


def _svd_users(a): return (jnp.linalg.pinv(a), jnp.linalg.lstsq(a, jnp.ones(a.shape[0], a.dtype))[0],
                           jnp.linalg.norm(a, 2), jnp.linalg.norm(a, "nuc"), jnp.linalg.cond(a), jnp.linalg.matrix_rank(a))


def test_pinv_lstsq_norm_cond_rank():
  rng = np.random.default_rng(4)
  check(_svd_users, rng.standard_normal((5, 3)).astype(np.float32), rtol=1e-3, atol=1e-4)


# ---- tridiagonal_solve, custom_linear_solve -------------------------------------------------------------------

def _tridiagonal(dl, d, du, b): return lax.linalg.tridiagonal_solve(dl, d, du, b)


@given(st.sampled_from([1, 4]), st.sampled_from(BATCHES), st.data())
def test_tridiagonal_solve(n, batch, data):
  """Diagonally dominant: LAPACK gtsv (jax.jit on CPU) does not pivot, and agrees with the Thomas algorithm."""
  vec = lambda shape: data.draw(hnp.arrays(np.float32, shape, elements=ENTRIES))
  dl, du = vec(batch + (n,)), vec(batch + (n,))
  d = (2.5 + 2 * np.abs(vec(batch + (n,)))) * np.where(vec(batch + (n,)) < 0, -1, 1).astype(np.float32)
  dl[..., 0] = 0
  du[..., -1] = 0
  check(_tridiagonal, dl, d, du, 4 * vec(batch + (n, 2)))


def _custom_solve(a, b):
  def matvec(x): return a @ x
  def solve(_, y): return jnp.linalg.solve(a, y)
  return lax.custom_linear_solve(matvec, b, solve, symmetric=True)


def test_custom_linear_solve():
  rng = np.random.default_rng(5)
  x = rng.standard_normal((4, 4)).astype(np.float32)
  check(_custom_solve, x @ x.T + 4 * np.eye(4, dtype=np.float32), rng.standard_normal(4).astype(np.float32))


# ---- hessenberg (gehrd), tridiagonal (sytrd) ----------------------------------------------------------------------

def _hessenberg(a):
  out = (jax.scipy.linalg.hessenberg(a), jax.scipy.linalg.hessenberg(a, calc_q=True))
  return out + (lax.linalg.hessenberg(a),) if a.shape[-1] else out     # jax's own shape rule rejects 0 x 0


def _sytrd(a): return lax.linalg.tridiagonal(a, lower=True), lax.linalg.tridiagonal(a, lower=False)


@given(square("generic"))
def test_hessenberg(a):
  """gehrd's packed output (reflectors below the subdiagonal) and taus with LAPACK's signs; scipy's H and Q."""
  check(_hessenberg, a)


@given(square("generic", sides=[1, 3, 4]))
def test_tridiagonal(a):
  """sytrd on a non-symmetric matrix: only the named triangle is read, the other one comes back as it was."""
  check(_sytrd, a)


def test_hessenberg_tridiagonal_zero_reflectors_and_float64():
  """Columns already reduced (tau = 0, as dlarfg); float64 under x64; a 9 x 9 batch (loop kernels reused)."""
  t = np.diag([1.0, 2, 3, 4]) + np.diag([5.0, 6, 7], 1) + np.diag([8.0, 0, 9], -1)
  check(_hessenberg, t.astype(np.float32))
  check(_sytrd, (t + t.T).astype(np.float32))
  rng = np.random.default_rng(7)
  check(_hessenberg, rng.standard_normal((2, 9, 9)).astype(np.float32), rtol=1e-4, atol=2e-5)
  check(_sytrd, rng.standard_normal((2, 9, 9)).astype(np.float32), rtol=1e-4, atol=2e-5)
  with jax.enable_x64(True):
    x = rng.standard_normal((2, 5, 5))
    check(_hessenberg, x, rtol=1e-10, atol=1e-12)
    check(_sytrd, x, rtol=1e-10, atol=1e-12)


# ---- float64, errors --------------------------------------------------------------------------------------------

def _f64_suite(a, b):
  return (jnp.linalg.cholesky(a), jnp.linalg.solve(a, b), jnp.linalg.qr(a), jnp.linalg.eigvalsh(a),
          jnp.linalg.svd(a, compute_uv=False), jnp.linalg.slogdet(a))


def test_float64():
  with jax.enable_x64(True):
    rng = np.random.default_rng(6)
    x = rng.standard_normal((2, 4, 4))
    check(_f64_suite, x @ np.swapaxes(x, -1, -2) + 4 * np.eye(4), rng.standard_normal((2, 4, 1)), rtol=1e-10, atol=1e-12)


def test_unsupported_params_raise():
  a = np.eye(3, dtype=np.float32)
  with pytest.raises(NotImplementedError, match="float16"):
    tiny(lambda a: lax.linalg.cholesky(a.astype(jnp.float16)))(a)
  with pytest.raises(NotImplementedError, match="perturb_singular"):
    tiny(lambda a: lax.linalg.tridiagonal_solve(a[0], a[1], a[2], a, perturb_singular=True))(a)
  with pytest.raises(NotImplementedError, match="subset_by_index"):
    tiny(lambda a: lax.linalg.eigh(a, subset_by_index=(0, 1)))(a)
  with pytest.raises(TypeError, match="complex"):
    tiny(lambda a: jnp.linalg.inv(a.astype(jnp.complex64)))(a)
  with pytest.raises(NotImplementedError, match="hessenberg on float16"):
    tiny(lambda a: lax.linalg.hessenberg(a.astype(jnp.float16)))(a)
  with pytest.raises(NotImplementedError, match="tridiagonal on float16"):
    tiny(lambda a: lax.linalg.tridiagonal(a.astype(jnp.float16)))(a)
