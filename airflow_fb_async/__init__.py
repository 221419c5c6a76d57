"""Apache Airflow provider for the Facebook Graph / Marketing API batch machinery."""

from __future__ import annotations

__version__ = "0.2.0.dev0"

__all__ = ["__version__"]
