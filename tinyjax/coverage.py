"""What tinyjax supports, generated from the registry: the README's coverage table and a per-function report.

    python -m tinyjax.coverage                 # print the coverage table (markdown)
    python -m tinyjax.coverage --write README.md   # refresh the table between the README's markers
"""
import argparse
import collections
import inspect
import re

import jax
from jax._src import source_info_util
from jax.extend import core as jcore
from jax.extend.core import primitives as P

from . import ops
from .interpreter import equations

MARKERS = ("<!-- coverage:start -->", "<!-- coverage:end -->")


def lax_primitives():
  """Every primitive jax.extend exports, plus any with a rule that lives elsewhere, by name."""
  prims = {p.name: p for p in vars(P).values() if isinstance(p, jcore.Primitive)}
  prims.update({p.name: p for p in ops.RULES})
  return dict(sorted(prims.items()))


def rule_location(rule) -> str:
  return f"{rule.fn.__module__.removeprefix('tinyjax.')}.{rule.fn.__name__}"


def status(prim):
  if (rule := ops.RULES.get(prim)) is not None: return ("partial", rule.note) if rule.note else ("supported", "")
  return "unsupported", ops.UNSUPPORTED.get(prim.name, "no rule yet")


def coverage_table() -> str:
  rows = ["| primitive | status | rule / note |", "|---|---|---|"]
  counts = collections.Counter()
  for name, prim in lax_primitives().items():
    state, note = status(prim)
    counts[state] += 1
    where = f"`{rule_location(ops.RULES[prim])}`" if prim in ops.RULES else ""
    rows.append(f"| `{name}` | {state} | {' — '.join(x for x in (where, note) if x)} |")
  summary = ", ".join(f"{counts[s]} {s}" for s in ("supported", "partial", "unsupported"))
  return f"{summary} (of {sum(counts.values())} primitives known to this JAX, jax {jax.__version__}).\n\n" + "\n".join(rows)


def _equations(jaxpr):
  """(equation, user line) for every equation, sub-jaxprs included; an equation JAX made inside a library's own
  jit has no user frame, so it takes the line of the nearest enclosing equation that has one."""
  for eqn, enclosing in equations(jaxpr):
    yield eqn, next((line for e in (eqn, *reversed(enclosing)) if (line := source_info_util.summarize(e.source_info))), "")


def report(closed_jaxpr):
  """Each primitive a program uses: how often, whether it has a rule, and the first user line that emits it."""
  seen = {}
  for eqn, line in _equations(closed_jaxpr.jaxpr):
    seen.setdefault(eqn.primitive, [0, line])[0] += 1
  lines = []
  for prim, (count, where) in sorted(seen.items(), key=lambda kv: (kv[0] in ops.RULES, kv[0].name)):
    state, note = status(prim)
    lines.append(f"{prim.name:28s} x{count:<4d} {state:11s} {note + ' ' if note else ''}(first at {where})")
  missing = sum(prim not in ops.RULES for prim in seen)
  head = f"{len(seen)} primitives, {missing} without a rule" + (": this function will raise" if missing else ": all supported")
  return head + "\n" + "\n".join(lines)


def write_readme(path):
  text = open(path).read()
  start, end = MARKERS
  pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.S)
  if not pattern.search(text): raise ValueError(f"{path} has no {start} ... {end} markers")
  open(path, "w").write(pattern.sub(lambda _: f"{start}\n{coverage_table()}\n{end}", text))


def main(argv=None):
  import tinyjax  # noqa: F401  (registers every rule module)
  parser = argparse.ArgumentParser(description=inspect.getdoc(inspect.getmodule(main)))
  parser.add_argument("--write", metavar="README", help="replace the table between the coverage markers in this file")
  args = parser.parse_args(argv)
  if args.write: write_readme(args.write)
  else: print(coverage_table())


if __name__ == "__main__":
  main()
