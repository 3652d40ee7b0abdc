"""The registry's contract (tinyjax/ops.py) and the interpreter's error types: one Rule record per primitive, found by
one grep, with every param named; an unsupported primitive is a NotImplementedError that says why, an internal bug
is a RuntimeError that names the primitive and the user's line, never 'unsupported'."""
import inspect
import pathlib
import re

import jax.numpy as jnp
import numpy as np
import pytest
from jax.extend.core import primitives as P

import tinyjax
from tinyjax import ops, tiny
from tinyjax.coverage import coverage_table
from tinyjax.interpreter import LocatedError, TinyjaxInternalError, TinyjaxNotImplementedError, UnsupportedPrimitiveError

RULES_DIR = pathlib.Path(tinyjax.__file__).parent / "rules"


def registration_lines() -> list[str]:
  """Every line of the rule modules that registers a rule (a decorator or a call of register/elementwise/traced)."""
  lines = []
  for path in RULES_DIR.glob("*.py"):
    lines += [ln for ln in path.read_text().splitlines() if re.search(r"\b(register|elementwise|traced)\(", ln)]
  return lines


def test_every_rule_is_found_by_one_grep_for_its_primitive():
  lines = registration_lines()
  def named(prim, line): return re.search(rf"\b{re.escape(prim.name.replace('-', '_'))}(_p)?\b", line.replace("-", "_"))
  missing = [p.name for p in ops.RULES if not any(named(p, ln) for ln in lines)]
  assert not missing, f"no registration line names these primitives: {missing}"


def test_rules_live_in_rules_package_under_their_own_names():
  for prim, rule in ops.RULES.items():
    assert rule.primitive is prim
    assert rule.fn.__module__.startswith("tinyjax.rules."), (prim.name, rule.fn.__module__)
    assert rule.fn.__name__ != "<lambda>", f"the rule of '{prim.name}' is a lambda"


def test_no_rule_swallows_params():
  """A param a new JAX adds must be an error naming the primitive, not silently ignored by **kwargs."""
  swallowing = [f"{p.name} ({r.fn.__module__}.{r.fn.__name__})" for p, r in ops.RULES.items()
                if any(q.kind is q.VAR_KEYWORD for q in inspect.signature(r.fn).parameters.values())]
  assert not swallowing, swallowing


def test_avals_only_for_rules_that_ask():
  for rule in ops.RULES.values():
    params = inspect.signature(rule.fn).parameters
    assert rule.with_avals == ("in_avals" in params), rule.primitive.name


def test_registering_a_primitive_twice_is_an_error():
  with pytest.raises(RuntimeError, match="registered twice"):
    ops.register(P.cos_p)(lambda x: x)


def test_coverage_table_names_rule_modules():
  rows = [r for r in coverage_table().splitlines() if "| supported |" in r or "| partial |" in r]
  assert rows and all("`rules." in r for r in rows), [r for r in rows if "`rules." not in r][:5]


@pytest.fixture
def patched_rule():
  """Replace a rule for one test and put the original back."""
  saved = {}
  def patch(prim, fn):
    saved.setdefault(prim, ops.RULES[prim])
    ops.RULES[prim] = ops.Rule(prim, fn)
  yield patch
  ops.RULES.update(saved)


def test_internal_error_is_not_reported_as_unsupported(patched_rule):
  def broken_cos(x, *, accuracy=None): return {}["no such key"]
  patched_rule(P.cos_p, broken_cos)
  with pytest.raises(TinyjaxInternalError) as err:
    tiny(lambda x: jnp.cos(x) + 1)(np.ones(3, np.float32))
  assert not isinstance(err.value, NotImplementedError)
  assert isinstance(err.value.__cause__, KeyError)
  message = str(err.value)
  assert "'cos'" in message and "internal error" in message and "test_registry.py" in message


def test_rule_refusal_keeps_its_type_and_location(patched_rule):
  def refusing_cos(x, *, accuracy=None): raise NotImplementedError("cos of this kind")
  patched_rule(P.cos_p, refusing_cos)
  with pytest.raises(TinyjaxNotImplementedError, match="cos of this kind") as err:
    tiny(lambda x: jnp.cos(x))(np.ones(3, np.float32))
  assert isinstance(err.value, LocatedError) and "test_registry.py" in str(err.value)


def test_unsupported_primitive_says_why(monkeypatch):
  saved = ops.RULES.pop(P.cos_p)
  monkeypatch.setitem(ops.UNSUPPORTED, "cos", "a reason given at registration")
  try:
    with pytest.raises(UnsupportedPrimitiveError, match="a reason given at registration"):
      tiny(lambda x: jnp.cos(x))(np.ones(2, np.float32))
  finally: ops.RULES[P.cos_p] = saved


def test_internal_error_inside_a_nested_jit_names_both_lines(patched_rule):
  def broken_sin(x, *, accuracy=None): return 1 // 0
  patched_rule(P.sin_p, broken_sin)
  inner = jax_jit_of_sin()
  with pytest.raises(TinyjaxInternalError) as err:
    tiny(lambda x: inner(x) * 2)(np.ones(2, np.float32))
  assert "'sin'" in str(err.value) and "inside 'jit'" in str(err.value)


def jax_jit_of_sin():
  import jax
  return jax.jit(lambda x: jnp.sin(x))
