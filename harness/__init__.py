"""bench: compare Python WSGI and ASGI servers on equivalent workloads."""

from __future__ import annotations

from pathlib import Path

__version__ = "0.1.0"

#: The project checkout: ``apps/`` and ``scenarios/`` live here (editable install).
PROJECT_ROOT = Path(__file__).resolve().parent.parent
