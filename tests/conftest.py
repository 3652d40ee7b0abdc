import os

from hypothesis import HealthCheck, settings

# Every generated case traces, captures and compiles kernels, so keep the number of examples modest;
# TINYJAX_EXAMPLES raises it for a longer local run.
settings.register_profile("tinyjax", max_examples=int(os.environ.get("TINYJAX_EXAMPLES", "15")), deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.load_profile("tinyjax")
