"""Linear algebra: cholesky, triangular_solve, lu, geqrf/householder_product/qr, hessenberg, tridiagonal, eigh, svd,
tridiagonal_solve and custom_linear_solve (jnp.linalg's solve/inv/det/slogdet/lstsq/pinv/norm/matrix_power are made of these).

Every factorization is a sequence of dependent steps, unrolled into the graph (shapes are static). What costs is
not the arithmetic but tinygrad's per-kernel work (measured on a 2-core CPU): compiling a kernel whose C source is
new takes ~100 ms, scheduling one ~5 ms, more when many are scheduled at once, and building the Tensor graph of a
step in Python about as much again. So:
- each step is the *same kernels* every time: the step number is not a Python constant baked into the code but a
  runtime int32 counter buffer (`_Loop`; Jacobi keeps its round number in the state's last entry), and rows and
  columns of step k are picked with masks against it (`_col`, `_row`); a 64-step loop compiles its kernels once;
- each step's state is realized when the step ends (`_keep`), inside the TinyJit capture, so that the scheduler
  always works on one small graph (a 512-kernel graph scheduled at once took 20 s; step by step, 3 s);
- a Jacobi round's graph is built once on placeholder buffers and re-aimed at each round's buffers (`_Step`);
- pairs of a Jacobi round are found by index arithmetic (the circle method) and read by gathers from the flat
  state buffer, which tinygrad folds into direct loads: one rotation kernel and one update kernel a round.

Conventions as LAPACK's (what XLA CPU calls), so that results match jax.jit and not only up to rounding of signs:
- cholesky (potrf, lower): reads the lower triangle; a matrix that is not positive definite gives NaN on and below
  the diagonal (zeros above), as jax.jit.
- lu (getrf): partial pivoting with the first row of largest |a|; a zero pivot column is left unscaled.
- geqrf/orgqr: Householder reflectors of dlarfg (beta = -sign(alpha) * norm, tau = 0 when the column below is 0).
- hessenberg (gehd2) and tridiagonal (sytd2, either triangle; the other one is returned as it came): the same
  reflectors, pivoting on the subdiagonal (the superdiagonal, columns last to first, for sytrd's upper case).
- eigh: cyclic Jacobi (round-robin pairs, all n/2 rotations of a round at once), a fixed number of sweeps; the
  eigenvalues ascend; eigenvectors agree with LAPACK's up to the sign of each column.
- svd: one-sided Jacobi (Hestenes) on the columns, then U from a Householder QR of A V (so U is orthonormal even for
  zero singular values and full_matrices comes for free); singular values descend; signs of singular vector pairs
  are not LAPACK's (gesdd's are arbitrary).
Float32 and float64 only (what jax's CPU linalg accepts besides complex); complex raises TypeError.
"""
import functools
import math

import jax
import numpy as np
from tinygrad import Tensor, dtypes as tg

from ..interpreter import eval_closed_jaxpr
from ..ops import primitive, register, unsupported
from .numerics import const, iota_along, jdtype


# ---- shared helpers --------------------------------------------------------------------------------------------

def _check(what, *xs):
  for x in xs:
    if x.dtype not in (tg.float32, tg.float64):
      kind = TypeError if "complex" in str(jdtype(x)) else NotImplementedError
      raise kind(f"{what} on {jdtype(x)}: tinyjax's linalg supports float32 and float64 (complex is not supported)")


def _iota(n: int) -> Tensor:
  """0..n-1 as an int32 buffer (one tiny kernel), so that the step kernels compare against a load, not an arange graph."""
  return iota_along((n,), 0).contiguous()


def _grid(m: int, n: int):
  """Row and column indices, shaped (m, 1) and (1, n)."""
  return _iota(m).reshape(m, 1), _iota(n).reshape(1, n)


class _Loop:
  """A loop of `count` steps whose step index k is a runtime int32 (1, 1) buffer: `for k in _Loop(n): ...`, each step
  ending with `_keep(*state)`. The step kernels then have the same code every time (compiled once)."""
  def __init__(self, count: int, reverse: bool = False):
    self.count, self.reverse = count, reverse

  def __iter__(self):
    k = const(self.count - 1 if self.reverse else 0, np.int32, (1, 1), buffer=True).contiguous()
    for _ in range(self.count):
      yield k
      k = (k + (-1 if self.reverse else 1)).contiguous()


def _keep(*xs):
  """End a loop step: its state becomes buffers now. Realizing step by step inside the capture (TinyJit records these
  kernels like any others) keeps tinygrad's scheduler on small graphs: ~5 ms a kernel instead of ~15 ms and growing
  with the graph (a 512-kernel graph took 20 s to schedule at once)."""
  Tensor.realize(*xs)
  return list(xs) if len(xs) > 1 else xs[0]


class _Step:
  """A loop step's graph built once on placeholder buffers and re-aimed at each step's buffers by substitution.
  Building a Jacobi round's graph in Python cost about as much as scheduling its kernels."""
  def __init__(self, fn, *examples: Tensor):
    self.placeholders = [Tensor.empty(*x.shape, dtype=x.dtype, device=x.device) for x in examples]
    self.out = fn(*self.placeholders)

  def __call__(self, *xs: Tensor) -> Tensor:
    return Tensor(self.out.uop.substitute({p.uop: x.uop for p, x in zip(self.placeholders, xs)}))


def _col(a: Tensor, j: Tensor, cols: Tensor) -> Tensor:
  """Column j (a (1, 1) index tensor) of a (..., m, n), as (..., m, 1)."""
  return (cols == j).where(a, 0).sum(-1, keepdim=True)


def _row(a: Tensor, i: Tensor, rows: Tensor) -> Tensor:
  """Row i of a (..., m, n), as (..., 1, n)."""
  return (rows == i).where(a, 0).sum(-2, keepdim=True)


def _mT(x: Tensor) -> Tensor: return x.transpose(-1, -2)


def _eye(m: int, n: int, dtype) -> Tensor:
  rows, cols = _grid(m, n)
  return (rows == cols).where(const(1, dtype), const(0, dtype))


def _empty_ok(x: Tensor) -> bool: return 0 in x.shape


def _via_jax(fn, *xs, **params):
  """Evaluate JAX's own Python implementation of a primitive (traced into a Jaxpr) on tensors."""
  closed = jax.make_jaxpr(functools.partial(fn, **params))(*[jax.ShapeDtypeStruct(x.shape, jdtype(x)) for x in xs])
  return eval_closed_jaxpr(closed, *xs)


def _rank_permutation(keys: Tensor, descending: bool) -> Tensor:
  """The one-hot (..., n, n) bool matrix P, P[i, r] where keys[i] sorts to position r (stable): `_permute_columns`
  with it sorts columns by the keys. O(n^2) comparisons, no data-dependent indexing."""
  n = keys.shape[-1]
  ki, kj = keys.unsqueeze(-1), keys.unsqueeze(-2)                    # (..., n, 1) and (..., 1, n): i and j
  rows, cols = _grid(n, n)
  before = (kj > ki) if descending else (kj < ki)                   # j sorts before i
  rank = (before | ((kj == ki) & (cols < rows))).cast(tg.int32).sum(-1)   # (..., n)
  return rank.unsqueeze(-1) == _iota(n).reshape(1, n)               # (..., n, n) bool


def _permute_columns(x: Tensor, perm: Tensor) -> Tensor:
  """x[..., :, i] moved to column r where perm[i, r]; exact (a sum of one value and zeros)."""
  return (perm.unsqueeze(-3).where(x.unsqueeze(-1), 0)).sum(-2)


# ---- cholesky --------------------------------------------------------------------------------------------------

@register(primitive("cholesky_p"))
def cholesky(a):
  _check("cholesky", a)
  n = a.shape[-1]
  if _empty_ok(a): return a
  rows, cols = _grid(n, n)
  s = (rows >= cols).where(a, 0)
  s = s + _mT((rows > cols).where(a, 0))      # potrf reads the lower triangle only
  for k in _Loop(n):                          # right-looking: column k, then the trailing update
    c = _col(s, k, cols)                      # (..., n, 1)
    d = _row(c, k, rows).sqrt()               # (..., 1, 1): L[k, k]
    l = c / d
    lt = _mT(l)
    s = _keep((rows > k).where((cols > k).where(s - l * lt, (cols == k).where(l, s)), (rows == k).where((cols == k).where(d, s), s)))
  diag = (rows == cols).where(s, 0).sum(-1)   # (..., n)
  bad = (~(diag > 0)).any(-1).reshape(*a.shape[:-2], 1, 1)
  return (rows >= cols).where(bad.where(const(math.nan, a.dtype), s), 0)


# ---- triangular_solve ------------------------------------------------------------------------------------------

def _forward_substitution(l: Tensor, b: Tensor, unit_diagonal: bool) -> Tensor:
  """Solve L X = B for lower-triangular L (..., n, n) and B (..., n, r), one row per step."""
  n = l.shape[-1]
  rows, cols = _grid(n, n)
  x = b
  for k in _Loop(n):
    lc = _col(l, k, cols)                                      # (..., n, 1)
    xk = _row(x, k, rows)
    if not unit_diagonal: xk = xk / _row(lc, k, rows)
    x = _keep((rows == k).where(xk, (rows > k).where(x - lc * xk, x)))
  return x


@register(primitive("triangular_solve_p"))
def triangular_solve(a, b, *, left_side, lower, transpose_a, conjugate_a, unit_diagonal):
  _check("triangular_solve", a, b)
  if _empty_ok(a) or _empty_ok(b): return b
  # X op(A) = B  <=>  op(A)^T X^T = B^T; op(A) = A^T turns lower into upper; conjugation is a no-op on reals.
  m, rhs, lo = a, (b if left_side else _mT(b)), lower
  if transpose_a == left_side: m, lo = _mT(m), not lo
  if not lo: m, rhs = m.flip(-1).flip(-2), rhs.flip(-2)        # reversing rows and columns makes it lower
  m, rhs = m.expand(*rhs.shape[:-2], *m.shape[-2:]), rhs
  x = _forward_substitution(m, rhs, unit_diagonal)
  if not lo: x = x.flip(-2)
  return x if left_side else _mT(x)


# ---- lu --------------------------------------------------------------------------------------------------------

@register(primitive("lu_p"))
def lu(a):
  _check("lu", a)
  *batch, m, n = a.shape
  k_count = min(m, n)
  rows, cols = _grid(m, n)
  perm = _iota(m).reshape(m, 1).expand(*batch, m, 1)
  piv = const(0, np.int32, (*batch, 1, k_count), buffer=True) if k_count else None
  steps = _iota(k_count).reshape(1, k_count) if k_count else None
  for k in _Loop(k_count):
    c = _keep(_col(a, k, cols))                                          # (..., m, 1)
    mag = (rows >= k).where(c.abs(), -1)
    p = (mag == mag.max(-2, keepdim=True)).where(rows, m).min(-2, keepdim=True)  # first row of largest |a|
    p = _keep((p == m).where(k, p))                                      # (NaN in the column: no swap, NaN spreads)
    swapped = _keep(_row(a, k, rows).cat(_row(a, p, rows), dim=-2))     # rows k and p, (..., 2, n)
    rk, rp = swapped[..., :1, :], swapped[..., 1:, :]
    pivot = _col(rp, k, cols)                                            # (..., 1, 1)
    c = (rows == k).where(_row(c, p, rows), (rows == p).where(_row(c, k, rows), c))   # column k after the swap
    l = (pivot != 0).where(c / pivot, c)                                 # getf2: a zero pivot column stays unscaled
    a = (rows == k).where(rp, (rows == p).where(rk, a))                  # swap rows k and p
    a = (rows > k).where((cols > k).where(a - l * rp, (cols == k).where(l, a)), a)
    perm = (rows == k).where(_row(perm, p, rows), (rows == p).where(_row(perm, k, rows), perm))
    a, perm, piv = _keep(a, perm, (steps == k).where(p, piv))
  pivots = piv.reshape(*batch, k_count) if k_count else const(0, np.int32, (*batch, 0))
  return [a, pivots, perm.reshape(*batch, m)]


@register(primitive("lu_pivots_to_permutation_p"))
def lu_pivots_to_permutation(pivots, *, permutation_size):
  """The permutation that getrf's row swaps (row k <-> row pivots[k], in order) apply to 0..n-1."""
  *batch, k_count = pivots.shape
  rows = _iota(permutation_size).reshape(permutation_size, 1)
  perm = rows.expand(*batch, permutation_size, 1)
  steps = _iota(k_count).reshape(1, k_count) if k_count else None
  piv = pivots.reshape(*batch, 1, k_count)
  for k in _Loop(k_count):
    p = (steps == k).where(piv, 0).sum(-1, keepdim=True)                 # (..., 1, 1)
    perm = _keep((rows == k).where(_row(perm, p, rows), (rows == p).where(_row(perm, k, rows), perm)))
  return perm.reshape(*batch, permutation_size)


# ---- Householder QR --------------------------------------------------------------------------------------------

def _reflector(c: Tensor, p: Tensor, rows: Tensor):
  """LAPACK's dlarfg on column c (..., m, 1) with its pivot at row p (a (1, 1) index): H = I - tau v v^T with v[p] = 1
  and v = 0 above p, H c = beta e_p. Returns (tau, v, packed) with tau (..., 1, 1) and `packed` the column as LAPACK
  leaves it: beta at p, v below, c above. The three scalars are made one buffer explicitly: left to itself the
  scheduler gave each scalar its own kernel."""
  alpha = _row(c, p, rows)                                              # (..., 1, 1)
  xn2 = (rows > p).where(c * c, 0).sum(-2, keepdim=True)
  still = xn2 == 0                                                      # dlarfg: H = I, tau = 0
  norm = (alpha * alpha + xn2).sqrt()
  beta = (alpha >= 0).where(-norm, norm)                                # LAPACK's SIGN(., -0.0) is +: beta < 0
  tau = still.where(0, (beta - alpha) / beta)
  scalars = _keep(tau.cat(still.where(0, 1 / (alpha - beta)), still.where(alpha, beta), dim=-1))   # (..., 1, 3)
  tau, scale, diag = scalars[..., :1], scalars[..., 1:2], scalars[..., 2:]
  v = (rows > p).where(c * scale, (rows == p).where(1, 0))
  packed = (rows == p).where(diag, (rows > p).where((scale == 0).where(c, v), c))
  return tau, v, packed


def _householder_step(a: Tensor, k: Tensor, rows: Tensor, cols: Tensor):
  """Step k of LAPACK's geqr2 (dlarfg + dlarf) on a (..., m, n): (new a, tau (..., 1, 1))."""
  c = _keep(_col(a, k, cols))                                           # (..., m, 1)
  tau, v, newcol = _reflector(c, k, rows)
  w = _keep((v * a).sum(-2, keepdim=True))                              # v^T A, (..., 1, n)
  return (cols > k).where(a - tau * v * w, (cols == k).where(newcol, a)), tau


@register(primitive("geqrf_p"))
def geqrf(a):
  _check("geqrf", a)
  *batch, m, n = a.shape
  k_count = min(m, n)
  if k_count == 0: return [a, const(0, a.dtype, (*batch, 0))]
  rows, cols = _grid(m, n)
  steps = _iota(k_count).reshape(1, k_count)
  taus = const(0, a.dtype, (*batch, 1, k_count), buffer=True)
  for k in _Loop(k_count):
    a, tau = _householder_step(a, k, rows, cols)
    a, taus = _keep(a, (steps == k).where(tau, taus))
  return [a, taus.reshape(*batch, k_count)]


@register(primitive("geqp3_p"), note="column norms recomputed each step (dlaqp2 downdates them): near-ties may pivot differently")
def geqp3(a, jpvt, *, use_magma=None):
  """QR with column pivoting as LAPACK dgeqp3/dlaqp2: columns with jpvt != 0 are moved to the front (in order) and
  factored first; then each step pivots on the first remaining column of largest norm below the finished rows. The
  norms are recomputed each step (dlaqp2 downdates them and recomputes when cancellation is large), so only
  near-ties could pick differently. Returns (a, jpvt 1-based, taus)."""
  _check("geqp3", a)
  *batch, m, n = a.shape
  k_count = min(m, n)
  if n == 0: return [a, jpvt, const(0, a.dtype, (*batch, 0))]
  rows, cols = _grid(m, n)
  jp = jpvt.reshape(*batch, 1, n)
  fixed_count = const(0, np.int32, (*batch, 1, 1), buffer=True)
  order = cols + 1                                                      # (1, n), 1-based column numbers
  for j in _Loop(n):                                                    # dgeqp3's loop over the fixed columns
    fixed, nf = _col(jp, j, cols) != 0, fixed_count
    swap = fixed & (j != nf)
    aj, anf = _col(a, j, cols), _col(a, nf, cols)
    a = swap.where((cols == j).where(anf, (cols == nf).where(aj, a)), a)
    oj, onf = _col(order, j, cols), _col(order, nf, cols)
    order = swap.where((cols == j).where(onf, (cols == nf).where(oj, order)), order)
    a, order, fixed_count = _keep(a, order.expand(*batch, 1, n), fixed_count + fixed.cast(tg.int32))
  if k_count == 0: return [a, order.cast(jpvt.dtype).reshape(*batch, n), const(0, a.dtype, (*batch, 0))]
  steps = _iota(k_count).reshape(1, k_count)
  taus = const(0, a.dtype, (*batch, 1, k_count), buffer=True)
  for k in _Loop(k_count):
    norms = (rows >= k).where(a * a, 0).sum(-2, keepdim=True)            # (..., 1, n) over the unfinished rows
    norms = (cols >= k).where(norms, -1)
    best = (norms == norms.max(-1, keepdim=True)).where(cols, n).min(-1, keepdim=True)
    p = (k < fixed_count).where(k, best)                                # fixed columns are not pivoted
    ak, ap = _col(a, k, cols), _col(a, p, cols)
    a = (cols == k).where(ap, (cols == p).where(ak, a))
    ok, op = _col(order, k, cols), _col(order, p, cols)
    order = (cols == k).where(op, (cols == p).where(ok, order))
    a, tau = _householder_step(a, k, rows, cols)
    a, order, taus = _keep(a, order, (steps == k).where(tau, taus))
  return [a, order.cast(jpvt.dtype).reshape(*batch, n), taus.reshape(*batch, k_count)]


@register(primitive("householder_product_p"))
def householder_product(a, taus):
  """Q = H_0 H_1 ... H_{k-1} applied to the first n columns of the identity (LAPACK orgqr), backwards."""
  _check("householder_product", a, taus)
  *batch, m, n = a.shape
  k_count = taus.shape[-1]
  q = _eye(m, n, a.dtype).expand(*batch, m, n)
  if k_count == 0 or _empty_ok(a): return q
  rows, cols = _grid(m, n)
  steps = _iota(k_count).reshape(1, k_count)
  t = taus.reshape(*batch, 1, k_count)
  for k in _Loop(k_count, reverse=True):
    vt = _keep((rows > k).where(_col(a, k, cols), (rows == k).where(1, 0)).cat((steps == k).where(t, 0).sum(-1, keepdim=True), dim=-2))
    v, tau = vt[..., :m, :], vt[..., m:, :]                              # (..., m, 1) and (..., 1, 1)
    q = _keep(q - tau * v * _keep((v * q).sum(-2, keepdim=True)))
  return q


@register(primitive("qr_p"))
def qr(a, *, pivoting, full_matrices, use_magma=None):
  _check("qr", a)
  from jax._src.lax.linalg import _qr_lowering   # JAX's own composition of geqrf/geqp3 and householder_product
  return _via_jax(_qr_lowering, a, pivoting=pivoting, full_matrices=full_matrices, use_magma=None)


# ---- Householder reductions: hessenberg (gehrd), tridiagonal (sytrd) ------------------------------------------

@register(primitive("hessenberg_p"))
def hessenberg(a):
  """LAPACK dgehd2 (ilo = 1, ihi = n): step k reflects column k below its subdiagonal (pivot row k + 1), applies H
  from the right to all rows, then from the left to the columns after k. Returns the packed matrix (Hessenberg part
  on and above the subdiagonal, the reflectors below it) and the n - 1 taus (the last one 0: a 1-element dlarfg)."""
  _check("hessenberg", a)
  *batch, n, _ = a.shape
  count = max(n - 1, 0)
  taus = const(0, a.dtype, (*batch, 1, count), buffer=True)
  if n <= 1: return [a, taus.reshape(*batch, count)]
  rows, cols = _grid(n, n)
  steps = _iota(count).reshape(1, count)
  for k in _Loop(count):
    c = _keep(_col(a, k, cols))                                         # (..., n, 1)
    tau, v, newcol = _reflector(c, k + 1, rows)
    vt = _mT(v)                                                         # (..., 1, n): 0 in columns <= k
    av = _keep((a * vt).sum(-1, keepdim=True))                          # A v, (..., n, 1)
    b = _keep((cols > k).where(a - tau * av * vt, a))                   # A H (dlarf 'Right')
    w = _keep((v * b).sum(-2, keepdim=True))                            # v^T (A H), (..., 1, n)
    a, taus = _keep((cols > k).where(b - tau * v * w, (cols == k).where(newcol, b)), (steps == k).where(tau, taus))
  return [a, taus.reshape(*batch, count)]


def _sytrd_lower(a: Tensor):
  """LAPACK dsytd2 with uplo = 'L' on the lower triangle of a (..., n, n): (packed lower triangle over the rest of a,
  d, e, taus). Works on a full symmetric copy: DSYMV's product and DSYR2's update of the trailing block."""
  *batch, n, _ = a.shape
  count = n - 1
  rows, cols = _grid(n, n)
  m = (rows >= cols).where(a, _mT(a))
  taus = const(0, a.dtype, (*batch, 1, max(count, 0)), buffer=True)
  if count > 0:
    steps = _iota(count).reshape(1, count)
    for k in _Loop(count):
      c = _keep(_col(m, k, cols))
      tau, v, newcol = _reflector(c, k + 1, rows)
      trailing = (rows > k) & (cols > k)
      x = _keep(tau * trailing.where(m * _mT(v), 0).sum(-1, keepdim=True))          # tau A v, (..., n, 1)
      w = _keep(x + (-0.5 * tau * (x * v).sum(-2, keepdim=True)) * v)               # x - tau/2 (x^T v) v
      m, taus = _keep(trailing.where(m - v * _mT(w) - w * _mT(v), (cols == k).where(newcol, m)), (steps == k).where(tau, taus))
  d = (rows == cols).where(m, 0).sum(-1)
  e = (rows == cols + 1).where(m, 0).sum(-1)[..., 1:]
  return (rows >= cols).where(m, a), d, e, taus.reshape(*batch, max(count, 0))


@register(primitive("tridiagonal_p"))
def tridiagonal(a, *, lower):
  """LAPACK dsytrd/dsytd2: (arr, d, e, taus). The upper case (reflectors for columns n-1 down to 1, pivots on the
  superdiagonal) is the lower case of the matrix with rows and columns reversed, read back reversed."""
  _check("tridiagonal", a)
  if lower: return list(_sytrd_lower(a))
  arr, d, e, taus = _sytrd_lower(a.flip(-1).flip(-2))
  return [arr.flip(-1).flip(-2), d.flip(-1), e.flip(-1), taus.flip(-1)]


# ---- eigh: parallel cyclic Jacobi ------------------------------------------------------------------------------

def _partner(x: Tensor, r: Tensor, n: int) -> Tensor:
  """Round r (0 <= r < rounds(n)) of the circle method: the index x is paired with (an index paired with itself sits
  the round out). Even n: n-1 rounds, n-1 stays put; odd n: n rounds."""
  if n % 2: return (2 * r - x + n) % n
  top = n - 1
  other = (2 * r - x + top) % top
  return (x == top).where(r, (x == r).where(top, other))


def _rounds(n: int) -> int: return n if n % 2 else n - 1


def _sweeps(n: int, dtype) -> int:
  """Cyclic Jacobi converges quadratically once it gets going: measured in float32, the off-diagonal norm reaches its
  rounding floor (~1e-6 of the norm) after 4 sweeps at n = 8, 5 at 16, 6 at 32, 7 at 64; float64 gets two more."""
  return max(3, math.ceil(math.log2(max(n, 2)))) + (1 if dtype == tg.float32 else 3)


def _rotation(app: Tensor, aqq: Tensor, apq: Tensor):
  """(c, s) of the Jacobi rotation that zeroes apq of [[app, apq], [apq, aqq]] (Numerical Recipes' t = tan)."""
  zero = apq == 0
  theta = (aqq - app) / zero.where(1, 2 * apq)
  big = theta.abs() > 1e15
  t = big.where(0.5 / theta, (theta >= 0).where(1, -1) / (theta.abs() + (theta * theta + 1).sqrt()))
  t = zero.where(0, t)
  c = (t * t + 1).rsqrt()
  return c, t * c


@register(primitive("eigh_p"), note="Jacobi sweeps; eigenvectors match LAPACK up to the sign of each column; subset_by_index unsupported")
def eigh(a, *, lower, sort_eigenvalues, subset_by_index, algorithm=None):
  _check("eigh", a)
  *batch, n, _ = a.shape
  if subset_by_index is not None and tuple(subset_by_index) != (0, n):
    raise NotImplementedError(f"eigh subset_by_index={subset_by_index}")
  if n == 0: return [a, const(0, a.dtype, (*batch, 0))]
  rows, cols = _grid(n, n)
  tri = (rows >= cols) if lower else (rows <= cols)
  strict = (rows > cols) if lower else (rows < cols)
  s = tri.where(a, 0) + _mT(strict.where(a, 0))                # syevd reads one triangle
  m = _jacobi(s, lambda m, xr, yc: _jacobi_rotations(m, n, yc), lambda m, cs, xr, yc: _jacobi_update(m, cs, n, xr, yc))
  w = (rows == cols).where(m[..., :n, :], 0).sum(-1)           # (..., n)
  v = m[..., n:2 * n, :]
  perm = _rank_permutation(w, descending=False)
  w = _permute_columns(w.unsqueeze(-2), perm).squeeze(-2)
  return [_permute_columns(v, perm), w]


def _jacobi(a: Tensor, rotations, update) -> Tensor:
  """The rounds of a cyclic Jacobi method on the columns of a (..., m, n), a fixed number of sweeps. The state is
  [A; V; counter row] as one (..., m+n+1, n) buffer (V starts as the identity), so that a round is one kernel for its
  rotations, `rotations(state, xr, yc)` -> (..., 2, n), and one for `update(state, rotations, xr, yc)` -> the next
  state, both built once (_Step); xr and yc are the state's row and column indices, as buffers."""
  *batch, m, n = a.shape
  state = Tensor.cat(a, _eye(n, n, a.dtype).expand(*batch, n, n), const(0, a.dtype, (*batch, 1, n)), dim=-2).contiguous()
  xr, yc = _grid(m + n + 1, n)
  Tensor.realize(xr, yc)
  rounds = _sweeps(n, a.dtype) * _rounds(n) if n > 1 else 0
  if rounds:
    rotation_step = _Step(lambda st: rotations(st, xr, yc), state)
    update_step = _Step(lambda st, cs: update(st, cs, xr, yc), state, rotation_step.out)
  for _ in range(rounds):
    cs = _keep(rotation_step(state))
    state = _keep(update_step(state, cs))
  return state


def _round_of(m: Tensor, n: int) -> Tensor:
  """The round number r (1, 1) kept in the state's last entry (the same in every batch)."""
  return m.reshape(-1)[m.numel() - 1:].reshape(1, 1).cast(tg.int32) % _rounds(n)


def _signed_rotation(app, aqq, apq, py, yc):
  """(c, s) per index y, s signed so that the rotated column y is c a_y + s a_partner; (1, 0) for one sitting out."""
  low = yc < py
  c, s = _rotation(low.where(app, aqq), low.where(aqq, app), apq)
  return (py == yc).where(1, c).cat((py == yc).where(0, low.where(-s, s)), dim=-2)   # (..., 2, n)


def _jacobi_rotations(m: Tensor, n: int, yc: Tensor) -> Tensor:
  """The round's rotations (..., 2, n) from the stacked [A; V; counter]: each pair's 2x2 block of A."""
  flat = m.reshape(*m.shape[:-2], -1)
  py = _partner(yc, _round_of(m, n), n)                                 # (1, n): partner of each column
  diag, dp, apq = flat[..., yc * (n + 1)], flat[..., py * (n + 1)], flat[..., py * n + yc]
  return _signed_rotation(diag, dp, apq, py, yc)


def _jacobi_update(m: Tensor, cs: Tensor, n: int, xr: Tensor, yc: Tensor) -> Tensor:
  """A <- J^T A J, V <- V J, counter + 1: every entry from four entries of the old state (gathers from the flat
  buffer, which tinygrad turns into direct loads)."""
  big, batch = 2 * n + 1, m.shape[:-2]
  flat = m.reshape(*batch, big * n)
  r = _round_of(m, n)
  py = _partner(yc, r, n)
  c, s = cs[..., :1, :], cs[..., 1:, :]
  rows_a = xr < n
  px = rows_a.where(_partner(xr, r, n), xr)                             # (big, 1); V and counter rows: themselves
  pad = ((0, 0),) * len(batch) + ((0, n + 1), (0, 0))
  cx, sx = rows_a.where(_mT(c).pad(pad), 1), rows_a.where(_mT(s).pad(pad), 0)
  m_xp, m_px, m_pp = flat[..., xr * n + py], flat[..., px * n + yc], flat[..., px * n + py]
  out = cx * (c * m + s * m_xp) + sx * (c * m_px + s * m_pp)
  return (xr == big - 1).where(m + 1, out)


# ---- svd: one-sided Jacobi -------------------------------------------------------------------------------------

def _svd_rotations(m: Tensor, rows_a: int, n: int, xr: Tensor, yc: Tensor) -> Tensor:
  """The round's rotations (..., 2, n) from the 2x2 Gram matrices of the paired columns of A in [A; V; counter]."""
  flat = m.reshape(*m.shape[:-2], -1)
  py = _partner(yc, _round_of(m, n), n)                              # (1, n)
  a = (xr < rows_a).where(m, 0)
  ap = (xr < rows_a).where(flat[..., xr * n + py], 0)         # column p_y of A, for each y
  norm2, gram, np2 = (a * a).sum(-2, keepdim=True), (a * ap).sum(-2, keepdim=True), (ap * ap).sum(-2, keepdim=True)
  return _signed_rotation(norm2, np2, gram, py, yc)


def _svd_update(m: Tensor, cs: Tensor, n: int, xr: Tensor, yc: Tensor) -> Tensor:
  flat = m.reshape(*m.shape[:-2], -1)
  py = _partner(yc, _round_of(m, n), n)
  out = cs[..., :1, :] * m + cs[..., 1:, :] * flat[..., xr * n + py]
  return (xr == m.shape[-2] - 1).where(m + 1, out)


def _svd_tall(a: Tensor, full_matrices: bool, compute_uv: bool):
  """SVD of a (..., m, n) with m >= n >= 1: (s, u, vt)."""
  *batch, m, n = a.shape
  st = _jacobi(a, lambda st, xr, yc: _svd_rotations(st, m, n, xr, yc), lambda st, cs, xr, yc: _svd_update(st, cs, n, xr, yc))
  b, v = st[..., :m, :], st[..., m:m + n, :]
  sigma = (b * b).sum(-2).sqrt()                                       # (..., n)
  perm = _rank_permutation(sigma, descending=True)
  sigma = _permute_columns(sigma.unsqueeze(-2), perm).squeeze(-2)
  if not compute_uv: return sigma, None, None
  b, v = _permute_columns(b, perm), _permute_columns(v, perm)
  r, taus = geqrf(b)                                                   # B = Q R with R diagonal up to rounding
  q = householder_product(r.pad(((0, 0),) * len(batch) + ((0, 0), (0, m - n))) if full_matrices and m > n else r, taus)
  rows, cols = _grid(m, n)
  sign = ((rows == cols).where(r, 0).sum(-2, keepdim=True) < 0).where(-1, 1).cast(a.dtype)  # (..., 1, n)
  if q.shape[-1] > n: sign = sign.pad(((0, 0),) * len(batch) + ((0, 0), (0, q.shape[-1] - n)), value=1)
  return sigma, q * sign, _mT(v)


@register(primitive("svd_p"), note="one-sided Jacobi; singular vectors match LAPACK up to the sign of each pair; subset_by_index unsupported")
def svd(a, *, full_matrices, compute_uv, subset_by_index=None, algorithm=None):
  _check("svd", a)
  *batch, m, n = a.shape
  k = min(m, n)
  if subset_by_index is not None and tuple(subset_by_index) != (0, k):
    raise NotImplementedError(f"svd subset_by_index={subset_by_index}")
  if k == 0:
    s = const(0, a.dtype, (*batch, 0))
    if not compute_uv: return [s]
    um, vn = (m, n) if full_matrices else (0, 0)
    return [s, _eye(m, um, a.dtype).expand(*batch, m, um), _eye(vn, n, a.dtype).expand(*batch, vn, n)]
  if m >= n:
    s, u, vt = _svd_tall(a, full_matrices, compute_uv)
    return [s] if not compute_uv else [s, u, vt]
  s, u, vt = _svd_tall(_mT(a), full_matrices, compute_uv)            # A^T = U S V^T  =>  A = V S U^T
  return [s] if not compute_uv else [s, _mT(vt), _mT(u)]


# ---- tridiagonal_solve, custom_linear_solve --------------------------------------------------------------------

@register(primitive("tridiagonal_solve_p"), note="Thomas algorithm without pivoting (gtsv pivots); perturb_singular unsupported")
def tridiagonal_solve(dl, d, du, b, *, perturb_singular):
  """JAX's own Thomas algorithm (a scan), as jax uses off CPU/GPU; LAPACK gtsv (XLA CPU) pivots where |dl| > |d|,
  which gives the same solution up to rounding for the diagonally dominant systems it is meant for."""
  _check("tridiagonal_solve", dl, d, du, b)
  if perturb_singular: raise NotImplementedError("tridiagonal_solve(perturb_singular=True)")
  if _empty_ok(b): return b
  from jax._src.lax.linalg import _tridiagonal_solve_jax
  return _via_jax(_tridiagonal_solve_jax, dl, d, du, b, perturb_singular=False)[0]


@register(primitive("ormqr_p"))
def ormqr(a, taus, c, *, left, transpose):
  """Q C, Q^T C, C Q or C Q^T from Householder reflectors: JAX's own loop over the reflectors."""
  _check("ormqr", a, taus, c)
  from jax._src.lax.linalg import _ormqr_lowering
  return _via_jax(_ormqr_lowering, a, taus, c, left=left, transpose=transpose)[0]


@register(primitive("symmetric_product_p"))
def symmetric_product(a, c, *, alpha, beta):
  """alpha A A^T + beta C (JAX's own definition; symmetrize_output is applied by the caller, outside the primitive)."""
  _check("symmetric_product", a, c)
  return alpha * (a @ _mT(a)) + beta * c


@register(primitive("linear_solve_p"))   # named custom_linear_solve in Jaxprs
def custom_linear_solve(*args, const_lengths, jaxprs):
  """The primal computation: the `solve` jaxpr on its constants and b (matvec and the transposes serve autodiff)."""
  n_mv, n_vm, n_solve = const_lengths.matvec, const_lengths.vecmat, const_lengths.solve
  n_consts = sum(const_lengths)
  solve_consts = args[n_mv + n_vm:n_mv + n_vm + n_solve]
  return eval_closed_jaxpr(jaxprs.solve, *solve_consts, *args[n_consts:])


unsupported("eig", why="its eigenvalues and eigenvectors are complex (geev): tinygrad has no complex dtype")
unsupported("schur", why="the real Schur form is not unique (order of the eigenvalues, 2x2 blocks, signs of the Schur "
            "vectors): matching jax.jit means replaying LAPACK gees's shifted QR sweeps and deflation decisions step by step")
