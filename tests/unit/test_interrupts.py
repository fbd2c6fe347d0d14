"""harness.interrupts: SIGINT, SIGTERM and SIGHUP become :class:`Interrupted` in the main
thread with the CLI's exit code (128 + the signal), a second signal cannot cut the
teardown short, the handlers are put back afterwards, and off the main thread the block
changes nothing."""

from __future__ import annotations

import signal
import threading
from typing import Any

import pytest

from harness.interrupts import INTERRUPT_SIGNALS, Interrupted, _signals_as_interrupt


def _handlers() -> dict[signal.Signals, Any]:
    return {sig: signal.getsignal(sig) for sig in INTERRUPT_SIGNALS}


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143),
                                           (signal.SIGHUP, 129)])
def test_each_signal_is_an_exception_with_its_exit_code(sig: signal.Signals, code: int) -> None:
    before = _handlers()
    with pytest.raises(Interrupted) as caught, _signals_as_interrupt():
        signal.raise_signal(sig)
        pytest.fail("the signal did not interrupt the block")
    assert caught.value.exit_code == code
    assert str(caught.value) == sig.name
    assert _handlers() == before


def test_a_second_signal_during_the_teardown_is_ignored() -> None:
    """The first signal raises; the finally that tears down (still inside the block)
    gets a Ctrl-C and a SIGHUP and runs to its end all the same."""
    before = _handlers()
    teardown: list[str] = []
    with pytest.raises(Interrupted) as caught, _signals_as_interrupt():
        try:
            signal.raise_signal(signal.SIGTERM)
        finally:
            signal.raise_signal(signal.SIGINT)
            teardown.append("servers stopped")
            signal.raise_signal(signal.SIGHUP)
            teardown.append("results saved")
    assert caught.value.exit_code == 143
    assert teardown == ["servers stopped", "results saved"]
    assert _handlers() == before


def test_off_the_main_thread_the_block_installs_nothing() -> None:
    before = _handlers()
    inside: list[dict[signal.Signals, Any]] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            with _signals_as_interrupt():
                inside.append(_handlers())
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    assert errors == [] and inside == [before]
    assert _handlers() == before
