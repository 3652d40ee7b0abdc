import os
import shutil

from hypothesis import HealthCheck, settings

# Every generated case traces, captures and compiles kernels, so keep the number of examples modest;
# TINYJAX_EXAMPLES raises it for a longer local run. The suite is a gate, so its examples are the same on every run
# (derandomized: a fixed seed per test); scripts/fuzz.sh (TINYJAX_FUZZ=1) draws fresh ones and keeps failures in
# .hypothesis/ to replay.
settings.register_profile("tinyjax", max_examples=int(os.environ.get("TINYJAX_EXAMPLES", "15")), deadline=None,
                          derandomize=not os.environ.get("TINYJAX_FUZZ"),
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.load_profile("tinyjax")

# tinygrad's CPU device compiles C with $CC (default `clang`); bfloat16 needs clang >= 17 (Debian 12's `clang` is 14).
if "CC" not in os.environ:
  newest = next((c for v in range(30, 16, -1) if (c := shutil.which(f"clang-{v}"))), None)
  if newest: os.environ["CC"] = newest
