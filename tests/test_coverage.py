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
