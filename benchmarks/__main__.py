"""Times every workload under tiny, hand-written tinygrad and jax.jit in one process and prints one markdown table
per tinygrad device (jax stays on its default backend).

    DEV=CPU python -m benchmarks [--quick] [--only lstm,sort] [--device CPU,CL] [--repeat N] [--write README.md]

Times are medians (tinyjax.timing.measure: each call until its outputs are computed on the device, not read back),
and the ratios compare figures of this run only. "first call" is the first call's time: tracing, capturing and
compiling for tiny (tinygrad's on-disk kernel cache may make a rerun's shorter), compiling for jax.jit. "kernels" is
how many tinygrad kernels one steady-state tiny call launches. Each row checks tiny's output against jax.jit's
(np.allclose, rtol = atol = 1e-3; jax.jit computing matmuls at full float32 precision for that check) and says
MISMATCH where they differ. A workload that raises gets its error in its row; the others still run.
"""
import argparse
import datetime
import os
import platform
import re
import subprocess
import sys
import time
from importlib.metadata import version

import jax
import numpy as np
from tinygrad import Device, GlobalCounters
from tinygrad.helpers import Context

from tinyjax import timing, to_numpy

from . import WORKLOADS, Skip

COLUMNS = ["workload", "tiny", "hand-written tinygrad", "jax.jit", "tiny/jax", "tiny/tinygrad", "kernels",
           "first call tiny", "first call jax"]
RTOL = ATOL = 1e-3


def seconds(s):
  if s is None: return "—"
  for unit, scale in (("s", 1), ("ms", 1e-3), ("µs", 1e-6)):
    if s >= scale or unit == "µs":
      v = s / scale
      return f"{v:.2f} {unit}" if v < 10 else f"{v:.1f} {unit}" if v < 100 else f"{v:.0f} {unit}"


def times(a, b):
  r = a / b
  return timing.ratio(a, b, ".2g" if r < 0.1 else ".2f" if r < 10 else ".1f" if r < 100 else ",.0f")


def short(e, width=90):
  """An exception as one short table cell: its type and the first line of its message."""
  text = f"{type(e).__name__}: {(str(e).strip().splitlines() or [''])[0]}"
  return (text if len(text) <= width else text[:width - 1] + "…").replace("|", "\\|")


def differs(got, want):
  """None where tiny's output matches jax.jit's within the tolerance, else what differs."""
  got, want = jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want)
  if len(got) != len(want): return f"{len(got)} outputs, jax.jit {len(want)}"
  worst = 0.0
  for g, w in zip(got, want):
    g, w = np.asarray(g), np.asarray(w)
    if g.shape != w.shape: return f"shape {g.shape}, jax.jit {w.shape}"
    if not np.allclose(g, w, rtol=RTOL, atol=ATOL, equal_nan=True):
      worst = max(worst, float(np.nanmax(np.abs(g.astype(np.float64) - w.astype(np.float64)))))
  return f"max abs diff {worst:.1e}" if worst else None


def steady(fn, warmup, repeat, budget):
  """Steady-state timing after `warmup` calls (a TinyJit replays from its third). Without a fixed `repeat`, as many
  calls as fit in about `budget` seconds (the last warm-up call's time is the estimate), between 3 and 50."""
  for _ in range(warmup - 1): timing.wait(fn())
  estimate = timing.timed(fn)[0]
  return timing.measure(fn, repeat or max(3, min(50, int(budget / max(estimate, 1e-9)))), warmup=0)


def run(workload, quick, repeat, budget):
  """One table row (a dict of cells). Every stage that can fail is caught apart, so a row shows what did work."""
  row = dict.fromkeys(COLUMNS, "—")
  try:
    case = workload.build(quick)
  except Skip as e:
    return {**row, "workload": workload.name, "tiny": f"skipped: {e}"}
  except Exception as e:
    return {**row, "workload": workload.name, "tiny": f"build failed: {short(e)}"}
  row["workload"] = workload.name + (f" ({case.size})" if case.size else "")
  got = want = None
  try:   # tiny's first call (trace, capture, compile) and its output
    first, out = timing.timed(case.tiny)
    row["first call tiny"], got = seconds(first), case.check(to_numpy(out))
  except Exception as e:
    row["tiny"], case.tiny = f"error: {short(e)}", None
  try:   # jax.jit's output at full float32 precision (a GPU defaults to TF32), then its first call as configured
    with jax.default_matmul_precision("highest"):
      want = case.check(jax.tree_util.tree_map(np.asarray, timing.wait(case.jax())))
    row["first call jax"] = seconds(timing.timed(case.jax)[0])
  except Exception as e:
    row["jax.jit"], case.jax = f"error: {short(e)}", None
  medians = {}
  calls = (("tiny", case.tiny, 1), ("hand-written tinygrad", case.tinygrad, 3), ("jax.jit", case.jax, 1))
  for column, fn, warmup in calls:
    if fn is None: continue
    try:
      medians[column] = steady(fn, warmup, repeat, budget).median
      row[column] = seconds(medians[column])
    except Exception as e:
      row[column] = f"error: {short(e)}"
  if "tiny" in medians:
    before = GlobalCounters.kernel_count
    timing.wait(case.tiny())
    row["kernels"] = str(GlobalCounters.kernel_count - before)
    for column, other in (("tiny/jax", "jax.jit"), ("tiny/tinygrad", "hand-written tinygrad")):
      if other in medians: row[column] = times(medians["tiny"], medians[other])
  if got is not None and want is not None and (why := differs(got, want)):
    row["tiny"] += f" MISMATCH ({why})"
  return row


def table(rows):
  lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
  return "\n".join(lines + ["| " + " | ".join(row[c] for c in COLUMNS) + " |" for row in rows])


def machine(device):
  cpu = platform.processor() or platform.machine()
  try:
    with open("/proc/cpuinfo") as f:
      cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
  except (OSError, StopIteration):
    pass
  text = f"{cpu}, {os.cpu_count()} cores"
  gpu = jax.devices()[0].device_kind if jax.default_backend() == "gpu" else None
  if gpu is None and device.split(":")[0] in ("CUDA", "NV"):
    try:
      gpu = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                           text=True, timeout=10).stdout.splitlines()[0].strip()
    except (OSError, IndexError, subprocess.SubprocessError):
      pass
  return text + (f", {gpu}" if gpu else "")


def caption(device, args, elapsed):
  flags = ["--quick"] * args.quick + [f"--repeat {args.repeat}"] * bool(args.repeat)
  flags += [f"--only {o}" for o in args.only or []]
  command = " ".join(["python -m benchmarks", *flags])
  return (f"{datetime.date.today().isoformat()}, {machine(device)}: tinygrad {version('tinygrad')} on {device}, "
          f"jax {jax.__version__} on {jax.default_backend()}; `{command}` took {elapsed:.0f} s")


def markers(device): return f"<!-- speed-table:{device}:start -->", f"<!-- speed-table:{device}:end -->"


def write(path, device, text):
  """Replaces the device's table in FILE (between its markers; a new pair goes after the last table's end)."""
  with open(path) as f: old = f.read()
  start, end = markers(device)
  if start not in old:
    last = old.rfind(":end -->")
    if last < 0 or "speed-table" not in old[old.rfind("<!--", 0, last):last]: sys.exit(f"{path} has no speed-table markers")
    cut = last + len(":end -->")
    old = old[:cut] + f"\n\n{start}\n{end}" + old[cut:]
  new = re.sub(re.escape(start) + ".*?" + re.escape(end), lambda _: f"{start}\n{text}\n{end}", old, count=1, flags=re.S)
  with open(path, "w") as f: f.write(new)


def main(argv=None):
  parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--device", action="append", help="tinygrad device(s), e.g. CPU, CL, CUDA (repeatable or "
                      "comma-separated; default Device.DEFAULT); one table each")
  parser.add_argument("--only", action="append", help="run workloads whose name contains this (case-insensitive; "
                      "repeatable or comma-separated)")
  parser.add_argument("--quick", action="store_true", help="smaller sizes, fewer calls: a few minutes on a 2-core CPU")
  parser.add_argument("--repeat", type=int, help="timed calls per measurement (default: as many as fit in about "
                      "10 s, 1 s with --quick, between 3 and 50)")
  parser.add_argument("--write", metavar="FILE", help="replace each device's table in FILE, between the markers "
                      "<!-- speed-table:DEVICE:start --> and <!-- speed-table:DEVICE:end -->")
  parser.add_argument("--list", action="store_true", help="print the workloads' names and exit")
  args = parser.parse_args(argv)
  split = lambda values: [v.strip() for value in values or [] for v in value.split(",") if v.strip()]
  only = [s.lower() for s in split(args.only)]
  workloads = [w for w in WORKLOADS if not only or any(s in w.name.lower() for s in only)]
  if args.list or not workloads:
    print("\n".join(w.name for w in WORKLOADS) if args.list else f"no workload matches {only}"); return
  budget = 1.0 if args.quick else 10.0
  for device in split(args.device) or [Device.DEFAULT]:
    start, rows = time.perf_counter(), []
    with Context(DEV=device):
      device = Device.DEFAULT   # canonical spelling
      for i, w in enumerate(workloads):
        print(f"[{device} {i + 1}/{len(workloads)}] {w.name} ...", end=" ", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        rows.append(run(w, args.quick, args.repeat, budget))
        print(f"{time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
    section = caption(device, args, time.perf_counter() - start) + "\n\n" + table(rows)
    print("\n" + section, flush=True)
    if args.write: write(args.write, device.split(":")[0], section)


if __name__ == "__main__":
  main()
