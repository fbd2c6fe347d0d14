"""bench: compare Python WSGI and ASGI servers on equivalent workloads."""

from __future__ import annotations

from pathlib import Path

__version__ = "0.1.0"

#: The folder holding the ``harness`` package: a checkout (editable install) or
#: site-packages (installed wheel). Server processes get it as ``PYTHONPATH`` so they
#: import ``harness.apps`` from the same copy as the harness.
PROJECT_ROOT = Path(__file__).resolve().parent.parent
#: The package itself. Its data (scenario files, locust users, apps, compose.yaml, the
#: Dockerfile) lives inside it and ships in the wheel; nothing is looked up relative
#: to a checkout.
PACKAGE_DIR = Path(__file__).resolve().parent
