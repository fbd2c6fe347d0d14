"""Signals that end a run in order: SIGINT, SIGTERM and SIGHUP become an exception in
the main thread, so every ``finally`` (teardown, results kept) runs."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from typing import Any


class Interrupted(Exception):
    """SIGINT, SIGTERM or SIGHUP arrived; carries the exit code the CLI should use
    (128 + the signal number: 130, 143, 129)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.exit_code = 128 + signum


#: Signals that end a run in order (teardown, results kept). SIGHUP: the terminal
#: closed, or a supervisor's reload-or-stop; handled like SIGTERM.
INTERRUPT_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@contextlib.contextmanager
def _signals_as_interrupt() -> Iterator[None]:
    """Turn the first SIGINT, SIGTERM or SIGHUP into :class:`Interrupted` in the main
    thread, so every ``finally`` runs; further signals are ignored until the block
    exits, so a second Ctrl-C cannot cut the teardown short and leave a server behind
    (``procs.stop_group`` also finishes a stop whatever arrives meanwhile)."""
    def handler(signum: int, _frame: Any) -> None:
        for sig in INTERRUPT_SIGNALS:
            signal.signal(sig, signal.SIG_IGN)
        raise Interrupted(signum)
    try:
        previous = {sig: signal.signal(sig, handler) for sig in INTERRUPT_SIGNALS}
    except ValueError:  # not the main thread (e.g. called from a test thread)
        yield
        return
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
