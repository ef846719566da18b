"""Loaded by every Python process the harness starts (this folder is on its PYTHONPATH): pytest, Nexus's worker
processes, drivers a test runs. Installs the stand-ins for Ray's internals (see ray_suite_internals)."""

try:
    import ray_suite_internals

    ray_suite_internals.install()
except Exception:  # (never break an interpreter's start)
    pass
