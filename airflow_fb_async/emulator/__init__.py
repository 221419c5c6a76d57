"""A local Graph / Marketing API emulator for tests, demos and benchmarks.

Standard library only; imports nothing from the rest of ``airflow_fb_async``.
``python -m airflow_fb_async.emulator --port 0`` prints its base URL on the first stdout line.
"""

from .server import GraphEmulator

__all__ = ["GraphEmulator"]
