"""Windowed rules: conv_general_dilated, reduce_window (sum/max/min and the generic form: any body, any number of
operands), and max/min pooling's derivatives select_and_scatter_add (VJP), select_and_scatter (its generic form) and
select_and_gather_add (JVP).

Everything is phrased on tinygrad's `_pool`, which views a tensor as (*outputs, *window) without copying: XLA's base
(lhs) dilation and edge padding are applied first as an XLA `pad`, then `_pool` takes the strided, dilated windows.

select_and_scatter_add/select_and_gather_add reproduce XLA's sequential select loop (ties, NaN, -inf and padding
included) as JAX lowers them for CPU; see _selected_tap. NaN is tested by bit pattern (_isnan), never `x != x`.

Known differences from XLA (CPU), all in the last bits or in cases XLA itself does not decide the same way twice:
- conv: padding and lhs-dilation holes are zeros that get multiplied, so an inf/NaN weight that lands on them gives
  NaN. XLA's Eigen path does the same for padding, its other paths skip padding and holes; with finite weights all agree.
- reduce_window_sum (and the generic add/mul monoid) on float16/bfloat16 accumulates in float32 and rounds once;
  XLA's CPU loop rounds after every addition, so a window can overflow to inf there and stay finite here.
"""
import math

import jax.numpy as jnp
import numpy as np
from jax.extend.core import primitives as P
from tinygrad import Tensor, dtypes as tg

from ..dtypes import EXPONENT_MASK, accumulator, same_width_uint, to_tiny
from ..ops import register
from .numerics import computed_once, const, iota_along, is_bool, is_float, nan_where
from .reductions import MONOID_REDUCTIONS, apply_body, fold, identity, monoid_applies, monoid_bodies, signed_zero
from .shapes import _interleave_zeros, pad


def _window_count(size, window, stride, dilation):
  """How many windows of `window` taps, `dilation` apart, start every `stride` elements of `size` (XLA: 0 if none fit)."""
  span = (window - 1) * dilation + 1
  return 0 if size < span else (size - span) // stride + 1


def _dilated_padded_size(size, dilation, lo, hi): return (max(size - 1, 0) * dilation + 1 if size else 0) + lo + hi


def _ints(params):
  """Nested tuples of Python ints: JAX's own transposes put numpy integers in these params, which tinygrad's
  movement ops cannot take."""
  return tuple(_ints(p) for p in params) if isinstance(params, (tuple, list)) else int(params)


def _isnan(x):
  """NaN test by bit pattern. Tensor.isnan is `x != x`, and tinygrad 0.14 constant-folds that to False wherever x is
  (or selects) a NaN constant — its ConstFloat treats nan == nan — e.g. right after ops.nan_where."""
  if x.dtype != tg.float64: x = x.cast(tg.float32)   # halves widen exactly, NaN stays NaN
  u = same_width_uint(x.dtype)
  return (x.bitcast(u) & (u.max >> 1)) > EXPONENT_MASK[x.dtype]   # the magnitude's bits above inf's


# ---- convolution -----------------------------------------------------------------------------------------------

@register(P.conv_general_dilated_p)
def conv_general_dilated(lhs, rhs, *, window_strides, padding, lhs_dilation, rhs_dilation, dimension_numbers,
                         feature_group_count, batch_group_count, precision=None, preferred_element_type=None,
                         out_sharding=None):
  """XLA's ConvGeneralDilated on tinygrad's N-d conv2d: permute to (N, C, *spatial) / (O, I, *window), zero-fill
  lhs dilation and padding (negative padding crops), fold batch groups into feature groups, and permute back."""
  lhs_spec, rhs_spec, out_spec = map(_ints, dimension_numbers)
  window_strides, padding, lhs_dilation, rhs_dilation = map(_ints, (window_strides, padding, lhs_dilation, rhs_dilation))
  out_dtype = to_tiny(preferred_element_type) if preferred_element_type is not None else lhs.dtype
  # bool: count the true products, then test for nonzero; halves: products are exact in float32, so accumulate there
  compute = tg.int32 if out_dtype == tg.bool else accumulator(out_dtype)
  x, w = lhs.permute(lhs_spec).cast(compute), computed_once(rhs).permute(rhs_spec).cast(compute)   # (N, C, *S), (O, I, *K)
  (n, c), spatial = x.shape[:2], x.shape[2:]
  (o, i), window = w.shape[:2], w.shape[2:]
  groups = feature_group_count
  if batch_group_count > 1:
    if feature_group_count > 1: raise NotImplementedError("feature_group_count and batch_group_count both > 1")
    groups, n = batch_group_count, n // batch_group_count
  padded = [_dilated_padded_size(s, d, lo, hi) for s, d, (lo, hi) in zip(spatial, lhs_dilation, padding)]
  out_spatial = [_window_count(p, k, s, d) for p, k, s, d in zip(padded, window, window_strides, rhs_dilation)]
  out_shape = (n, o, *out_spatial)
  if 0 in out_shape or i == 0: return _to_out(const(0, out_dtype, out_shape), out_spec)   # nothing to add up
  if 0 in spatial:   # the window sees only padding (XLA returns zeros here even for inf weights)
    return _to_out(const(0, out_dtype, out_shape), out_spec)
  x = _dilate_and_pad(x, 2, lhs_dilation, padding)
  if any(d > 1 for d in lhs_dilation) or any(p != (0, 0) for p in padding): x = x.contiguous()   # see _windows
  else: x = computed_once(x)   # (the padded copy above computes x once already)
  if batch_group_count > 1:
    # XLA splits the batch as (batch_group_count, N/bgc), group-major; output feature group g reads batch group g
    x = x.reshape(groups, n, c, *padded).permute(1, 0, 2, *range(3, 3 + len(padded))).reshape(n, groups * c, *padded)
  y = x.conv2d(w, groups=groups, stride=tuple(window_strides), dilation=tuple(rhs_dilation), dtype=compute)
  return _to_out(y != 0 if out_dtype == tg.bool else y.cast(out_dtype), out_spec)


def _to_out(y, out_spec):
  """(N, O, *spatial) to the output layout: out_spec[k] is where canonical axis k goes."""
  return y.permute(tuple(int(a) for a in np.argsort(out_spec)))


def _dilate_and_pad(x, first_axis, dilation, padding):
  """Zeros between neighbours (dilation - 1 of them) and at the edges of the axes from first_axis on; grow first,
  then crop the negative edges, as XLA's pad does."""
  for axis, d in enumerate(dilation, first_axis):
    if d > 1 and x.shape[axis] > 1: x = _interleave_zeros(x, axis, d - 1)
  lead = ((0, 0),) * first_axis
  grow = lead + tuple((max(lo, 0), max(hi, 0)) for lo, hi in padding)
  if any(g != (0, 0) for g in grow): x = x.pad(grow)
  crop = lead + tuple((-min(lo, 0), -min(hi, 0)) for lo, hi in padding)
  if any(c != (0, 0) for c in crop): x = x.shrink(tuple((lo, n - hi) for (lo, hi), n in zip(crop, x.shape)))
  return x


# ---- reduce_window ---------------------------------------------------------------------------------------------

def _windows(x, fill, window_dimensions, window_strides, padding, base_dilation, window_dilation):
  """x padded with `fill` (edges and base-dilation holes), viewed as (*outputs, *window) — a 0-d x as one tap of
  shape (1,) — or None when some output axis has no window. The padded tensor is materialized first: a window view
  over a masked pad makes tinygrad's kernel optimizer take seconds per kernel, over a plain buffer a fraction."""
  window_dimensions, window_strides, padding, base_dilation, window_dilation = \
    map(_ints, (window_dimensions, window_strides, padding, base_dilation, window_dilation))
  padded = [_dilated_padded_size(s, b, lo, hi) for s, b, (lo, hi) in zip(x.shape, base_dilation, padding)]
  outs = [_window_count(p, k, s, d) for p, k, s, d in zip(padded, window_dimensions, window_strides, window_dilation)]
  if 0 in outs: return None, tuple(outs)
  if x.ndim == 0: return x.reshape(1), ()
  config = tuple((lo, hi, b - 1) for (lo, hi), b in zip(padding, base_dilation))
  if any(c != (0, 0, 0) for c in config):
    if x.dtype == tg.bfloat16:   # padded as bits: clang-19 compiles a bf16 constant in a masked load to a call of
      bits = int(np.array(fill, jnp.bfloat16).view(np.uint16))   # __truncsfbf2, which tinygrad's loader cannot link
      x = pad(x.bitcast(tg.uint16), const(bits, np.uint16), padding_config=config).contiguous().bitcast(tg.bfloat16)
    else: x = pad(x, const(fill, x.dtype), padding_config=config).contiguous()
  return x._pool(tuple(window_dimensions), tuple(window_strides), tuple(window_dilation)), tuple(outs)


def _window_axes(win, outs): return tuple(range(len(outs), win.ndim))



def _reduce_window(x, kind, window_dimensions, window_strides, padding, base_dilation, window_dilation, init=None):
  """Reduce every window with a monoid ('sum', 'prod', 'max', 'min'; over bools also 'or', 'and'); padding and holes
  hold its identity. `init` (a scalar Tensor) is folded in once per window, as XLA's CPU loop does for the generic
  reduce_window."""
  if any(k <= 0 for k in window_dimensions): raise NotImplementedError(f"reduce_window with an empty window {window_dimensions}")
  fill = identity(x, kind)
  win, outs = _windows(x, fill, window_dimensions, window_strides, padding, base_dilation, window_dilation)
  if win is None: return const(fill, x.dtype, outs)   # some output axis is empty
  axes = _window_axes(win, outs)
  if kind in ("sum", "prod"):
    if is_bool(x): raise NotImplementedError(f"reduce_window {kind} over booleans")
    acc = accumulator(x.dtype)
    out = (win.sum(axes, dtype=acc) if kind == "sum" else win.prod(axes, dtype=acc)).cast(x.dtype)
    return (signed_zero(win, out, axes, kind) if kind == "sum" else out) if init is None else init + out if kind == "sum" else init * out
  if is_bool(x):
    either = kind in ("max", "or")
    out = win.any(axes) if either else win.all(axes)
    return out if init is None else out | init if either else out & init
  out = win.max(axes) if kind == "max" else win.min(axes)
  if init is None: out = signed_zero(win, out, axes, kind)
  else: out = out.maximum(init) if kind == "max" else out.minimum(init)
  if not is_float(x): return out
  nan = _isnan(win).any(axes)
  return nan_where(nan if init is None else nan | _isnan(init), out)


@register(P.reduce_window_sum_p)
def reduce_window_sum(x, *, window_dimensions, window_strides, padding, base_dilation, window_dilation):
  return _reduce_window(x, "sum", window_dimensions, window_strides, padding, base_dilation, window_dilation)


@register(P.reduce_window_max_p)
def reduce_window_max(x, *, window_dimensions, window_strides, padding, base_dilation, window_dilation):
  return _reduce_window(x, "max", window_dimensions, window_strides, padding, base_dilation, window_dilation)


@register(P.reduce_window_min_p)
def reduce_window_min(x, *, window_dimensions, window_strides, padding, base_dilation, window_dilation):
  return _reduce_window(x, "min", window_dimensions, window_strides, padding, base_dilation, window_dilation)


# XLA's CPU reduce_window is a loop over each window's taps for any window size; up to this many taps so is ours (exact
# for any body), beyond it the fold is a tree: the same result only for an associative body.
WINDOW_SEQUENTIAL_MAX = 256

def _monoid_kind(prim, x):
  """The _reduce_window kind of a monoid body over x, or None (bool add/mul, integer and/or, xor: the generic fold)."""
  if not monoid_applies(prim, x) or prim is P.xor_p or (prim in (P.and_p, P.or_p) and not is_bool(x)): return None
  return MONOID_REDUCTIONS[prim][0]


@register(P.reduce_window_p, note=f"a body that is not associative, over windows of more than {WINDOW_SEQUENTIAL_MAX} taps, "
                                  "folds as a tree (XLA's loop goes tap by tap)")
def reduce_window(*operands_and_inits, jaxpr, consts, window_dimensions, window_strides, padding, base_dilation,
                  window_dilation):
  """The generic form: any number of operands, a reduction body given as a Jaxpr. XLA (CPU) starts each window from
  the init values and folds in the real elements only (padding and base-dilation holes are skipped), tap by tap in
  row-major window order: `acc = body(acc, x)`. A body that is a monoid per operand is op(init, monoid-reduce of the
  window); any other is reductions.fold over the window's taps gathered into a trailing axis, with the padding
  masked out (sequential up to WINDOW_SEQUENTIAL_MAX taps: XLA's order, exact for any body)."""
  window = dict(window_dimensions=window_dimensions, window_strides=window_strides, padding=padding,
                base_dilation=base_dilation, window_dilation=window_dilation)
  k = len(operands_and_inits) // 2
  xs, inits = operands_and_inits[:k], operands_and_inits[k:]
  if xs[0].ndim == 0: return list(xs)   # XLA (CPU) hands a rank-0 operand back as it is, without folding in init
  prims = monoid_bodies(jaxpr, consts, k)
  kinds = [_monoid_kind(p, x) for p, x in zip(prims, xs)] if prims else [None]
  if None not in kinds: return [_reduce_window(x, kind, **window, init=init) for x, kind, init in zip(xs, kinds, inits)]
  if any(d <= 0 for d in window_dimensions): raise NotImplementedError(f"reduce_window with an empty window {window_dimensions}")
  wins = [_windows(x, 0, **window) for x in xs]
  outs = wins[0][1]
  if wins[0][0] is None: return [i.reshape((1,) * len(outs)).expand(outs) for i in inits]   # some output axis is empty
  taps = math.prod(_ints(window_dimensions))
  values = [w.reshape(*outs, taps) for w, _ in wins]
  holes = any(p != (0, 0) for p in _ints(padding)) or any(b != 1 for b in _ints(base_dilation))
  valid = _valid_taps(xs[0].shape, **window).reshape(*outs, taps) if holes else None
  return fold(jaxpr, consts, values, inits, valid, sequential_max=WINDOW_SEQUENTIAL_MAX)


# ---- max/min pooling derivatives -------------------------------------------------------------------------------

# select_prim -> (extreme kind, ties go to the first tap in window order?)
_SELECT = {P.ge_p: ("max", True), P.gt_p: ("max", False), P.le_p: ("min", True), P.lt_p: ("min", False)}


def _tap_index(window_dimensions):
  """An int32 tensor of the window's shape: each tap's position in row-major window order (the order XLA's loops
  visit)."""
  n, index, stride = len(window_dimensions), None, 1
  for axis in reversed(range(n)):
    k = window_dimensions[axis]
    line = iota_along(window_dimensions, axis) * stride
    index, stride = line if index is None else index + line, stride * k
  return index


def _selected_tap(win, outs, valid, select_prim, init_first=False):
  """One-hot (*outputs, *window) of the tap XLA's select loop keeps: `cur = first tap; for e in later taps: if not
  select(cur, e): cur = e`, over the taps marked valid (None: all), in row-major window order. `select(cur, NaN)`
  and `select(NaN, e)` are false, so the loop jumps onto a NaN and off it again at the next tap: the winner is the
  extreme (first of ties for ge/le, last for gt/lt) among taps after the last NaN, or that NaN if no tap follows.
  init_first: the loop starts from the identity (-inf for max) instead of the first tap; for ge/le the identity then
  survives a window without NaN whose taps all equal it (or that has no valid tap), and nothing is selected."""
  if select_prim not in _SELECT: raise NotImplementedError(f"select_prim {select_prim} (expected ge, gt, le or lt)")
  kind, first = _SELECT[select_prim]
  axes, n = _window_axes(win, outs), len(outs)
  k = math.prod(win.shape[n:])
  tap = _tap_index(win.shape[n:]).reshape(*([1] * n), *win.shape[n:]).expand(win.shape)
  nan = (_isnan(win) if valid is None else valid & _isnan(win)) if is_float(win) else None
  last_nan = nan.where(tap, -1).max(axes, keepdim=True) if nan is not None else const(-1, np.int32)
  candidate = tap > last_nan if valid is None else valid & (tap > last_nan)
  fill = identity(win, kind)
  filled = candidate.where(win, const(fill, win.dtype))
  best = filled.max(axes, keepdim=True) if kind == "max" else filled.min(axes, keepdim=True)
  hit = candidate & (win == best)
  none = k if first else -1   # no candidate after the last NaN: that NaN (or, without one, nothing) is kept
  chosen = hit.where(tap, none).min(axes, keepdim=True) if first else hit.where(tap, none).max(axes, keepdim=True)
  chosen = (chosen == none).where(last_nan, chosen)
  if init_first and first: chosen = ((last_nan < 0) & (best == fill)).where(-1, chosen)
  return tap == chosen


def _valid_taps(shape, **window):
  """(*outputs, *window) booleans: which taps fall on real elements rather than padding or base-dilation holes."""
  return _windows(const(True, np.bool_, shape), False, **window)[0]


@register(P.select_and_scatter_add_p, note="float sources and non-negative padding (what jax.grad emits)")
def select_and_scatter_add(source, operand, *, select_prim, window_dimensions, window_strides, padding):
  """Max-pool's VJP: each window's `source` value is added at the tap XLA's select picks (see _selected_tap).
  As JAX lowers it for CPU and GPU, padding holds the select identity (-inf for ge, +inf otherwise) and takes part in
  the select loop; a window that picks padding drops its source value. The scatter is the transpose of the window
  view, which tinygrad's Tensor.gradient derives from `_pool`."""
  window_dimensions, window_strides, padding = map(_ints, (window_dimensions, window_strides, padding))
  if any(lo < 0 or hi < 0 for lo, hi in padding):   # JAX's own lowering cannot slice these back either
    raise NotImplementedError(f"select_and_scatter_add with negative padding {padding}")
  if not is_float(source): raise NotImplementedError("select_and_scatter_add of a non-float source (Tensor.gradient is float-only)")
  if 0 in operand.shape: return operand.cast(source.dtype)
  if 0 in source.shape: return const(0, source.dtype, operand.shape)
  if operand.ndim == 0: return source   # one window of one tap
  ones = (1,) * operand.ndim
  fill = identity(operand, "max" if select_prim is P.ge_p else "min")   # exactly JAX's choice (gt gets +inf too)
  win, outs = _windows(operand, fill, window_dimensions, window_strides, padding, ones, ones)
  onehot = _selected_tap(win, outs, None, select_prim)
  acc = accumulator(source.dtype)
  # the transpose of the window view, by differentiating it at a placeholder of the padded shape (never read)
  padded = [n + lo + hi for n, (lo, hi) in zip(operand.shape, padding)]
  placeholder = Tensor.empty(*padded, dtype=acc, device=operand.device)
  taken = (placeholder._pool(tuple(window_dimensions), tuple(window_strides)) * onehot.cast(acc)).sum(_window_axes(win, outs))
  # materialized at the padded shape, where every window lands somewhere: fused with a consumer that reads only
  # positions no window covers, tinygrad 0.14 emits this reduction with an uninitialized accumulator (garbage out)
  scattered = taken.gradient(placeholder, gradient=source.cast(acc))[0].contiguous()
  return scattered.shrink(tuple((lo, lo + n) for (lo, _), n in zip(padding, operand.shape))).cast(source.dtype)


@register(P.select_and_scatter_p,
          note="any select body; scatter body add over float sources, no padding (what JAX's lowering of select_and_scatter_add emits)")
def select_and_scatter(operand, source, init_value, *, select_jaxpr, select_consts, scatter_jaxpr, scatter_consts,
                       window_dimensions, window_strides, padding):
  """The generic form of max-pool's VJP (JAX emits it only while lowering select_and_scatter_add): XLA's select loop
  `cur = first tap; for e in later taps: if not select(cur, e): cur = e` with any select body, evaluated tap by tap;
  then each window's source value is combined into the output (init everywhere) at the selected position. The
  scatter must be add (float), done as in select_and_scatter_add: the transpose of the window view."""
  window_dimensions, window_strides, padding = map(_ints, (window_dimensions, window_strides, padding))
  if any(p != (0, 0) for p in padding):   # (JAX pads the operand itself before emitting it: XLA CPU crashes on padding)
    raise NotImplementedError(f"select_and_scatter with padding {padding}")
  if monoid_bodies(scatter_jaxpr, scatter_consts, 1) != [P.add_p] or not is_float(source):
    raise NotImplementedError("select_and_scatter with a scatter body other than add over floats")
  if 0 in operand.shape or 0 in source.shape or operand.ndim == 0:
    if operand.ndim == 0 and 0 not in source.shape: return init_value + source
    return init_value.reshape((1,) * operand.ndim).expand(operand.shape) if operand.ndim else init_value
  ones = (1,) * operand.ndim
  win, outs = _windows(operand, 0, window_dimensions, window_strides, padding, ones, ones)
  taps = math.prod(window_dimensions)
  values = win.reshape(*outs, taps)
  best, chosen = values[..., 0], const(0, np.int32, outs)
  for k in range(1, taps):
    keep = apply_body(select_jaxpr, select_consts, [best], [values[..., k]])[0]
    best, chosen = keep.where(best, values[..., k]), keep.where(chosen, const(k, np.int32, outs))
  onehot = (iota_along((taps,), 0) == chosen.unsqueeze(-1)).reshape(win.shape)
  acc = accumulator(source.dtype)
  placeholder = Tensor.empty(*operand.shape, dtype=acc, device=operand.device)
  taken = (placeholder._pool(tuple(window_dimensions), tuple(window_strides)) * onehot.cast(acc)).sum(_window_axes(win, outs))
  scattered = taken.gradient(placeholder, gradient=source.cast(acc))[0].contiguous()   # (see select_and_scatter_add)
  return (init_value.cast(acc) + scattered).cast(source.dtype)


@register(P.select_and_gather_add_p)
def select_and_gather_add(tangents, operand, *, select_prim, window_dimensions, window_strides, padding, base_dilation,
                          window_dilation):
  """Max-pool's JVP: each window's output is the tangent at the tap XLA picks. JAX lowers it to a reduce_window over
  (operand, tangent) pairs that starts from (-inf, 0) for ge and skips padding and holes, so a window of only -inf
  (or only padding) yields 0."""
  window = dict(window_dimensions=window_dimensions, window_strides=window_strides, padding=padding,
                base_dilation=base_dilation, window_dilation=window_dilation)
  if not is_float(operand): raise NotImplementedError("select_and_gather_add over a non-float operand")
  if any(k <= 0 for k in window_dimensions): raise NotImplementedError(f"select_and_gather_add with an empty window {window_dimensions}")
  if operand.ndim == 0: return tangents   # XLA hands a rank-0 reduce_window's operand back, without the (-inf, 0) init
  win, outs = _windows(operand, 0, **window)
  if win is None or 0 in operand.shape: return const(0, tangents.dtype, outs)   # no window or only padding: 0
  onehot = _selected_tap(win, outs, _valid_taps(operand.shape, **window), select_prim, init_first=True)
  picked = onehot.where(_windows(tangents, 0, **window)[0], const(0, tangents.dtype))
  return picked.sum(_window_axes(win, outs), dtype=accumulator(tangents.dtype)).cast(tangents.dtype)
