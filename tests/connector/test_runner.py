"""The worker loops' wait between rounds (connector/runner.py)."""

from __future__ import annotations

import threading

from connector.runner import IDLE_FIRST, _Idle


class _Recorder(threading.Event):
    """A stop event that records each wait instead of sleeping."""

    def __init__(self) -> None:
        super().__init__()
        self.waits: list[float] = []

    def wait(self, timeout: float | None = None) -> bool:
        assert timeout is not None
        self.waits.append(timeout)
        return False


def test_empty_rounds_wait_longer_each_time_up_to_the_idle_setting() -> None:
    stop = _Recorder()
    idle = _Idle(0.5)
    for _ in range(7):
        idle.after(False, stop)
    assert stop.waits == [IDLE_FIRST, 0.04, 0.08, 0.16, 0.32, 0.5, 0.5]


def test_a_busy_round_goes_on_at_once_and_starts_the_waits_over() -> None:
    stop = _Recorder()
    idle = _Idle(0.5)
    for busy in (False, False, False, True, True, False):
        idle.after(busy, stop)
    assert stop.waits == [IDLE_FIRST, 0.04, 0.08, IDLE_FIRST]


def test_an_idle_setting_below_the_first_wait_is_kept() -> None:
    stop = _Recorder()
    idle = _Idle(0.005)
    idle.after(False, stop)
    idle.after(False, stop)
    assert stop.waits == [0.005, 0.005]
