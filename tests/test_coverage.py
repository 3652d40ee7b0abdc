"""The README's coverage table is generated from the registry and must not go stale; report() says what is missing."""
import pathlib

import jax.numpy as jnp
import numpy as np

from tinyjax import tiny
from tinyjax.coverage import MARKERS, coverage_table

README = pathlib.Path(__file__).parent.parent / "README.md"


def test_readme_coverage_table_is_current():
  text = README.read_text()
  table = text[text.index(MARKERS[0]) + len(MARKERS[0]):text.index(MARKERS[1])].strip()
  assert table == coverage_table().strip(), "run: python -m tinyjax.coverage --write README.md"


def test_report_lists_primitives_with_support_and_source_line():
  def f(x): return jnp.sin(x).sum() + jnp.fft.fft(x).real.sum()
  text = tiny(f).report(np.ones(4, np.float32))
  assert "this function will raise" in text
  assert "fft" in text and "unsupported" in text and "complex" in text
  assert "sin " in text and "test_coverage.py" in text


def test_every_primitive_has_a_rule_or_a_reason():
  """No primitive known to this JAX is left as "no rule yet": each has a rule or a reason (ops.unsupported)."""
  from tinyjax.coverage import lax_primitives, status
  unexplained = [name for name, prim in lax_primitives().items() if status(prim) == ("unsupported", "no rule yet")]
  assert not unexplained, unexplained


def test_report_of_generic_reductions_and_identities():
  """reduce, reduce_window and the placement/annotation primitives show up as supported in a function's report."""
  import jax
  from jax import lax
  def f(x):
    y = lax.reduce(x, np.float32(0), lambda a, b: a + 2 * b, (0,))
    z = lax.reduce_window(x, np.float32(0), lambda a, b: a * b + a, (2,), (1,), "VALID")
    return jax.device_put(y), lax.optimization_barrier(z)
  text = tiny(f).report(np.ones(4, np.float32))
  assert "all supported" in text and "reduce " in text and "reduce_window" in text and "device_put" in text
