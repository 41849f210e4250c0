"""The training log line's window: mean loss, samples per second and data-wait share since the last line,
on a fake clock (no wall-clock assertions)."""
import pytest

from vlmkit.runners import log_window
from vlmkit.runners.log_window import LogWindow


@pytest.fixture
def clock(monkeypatch):
    now = [100.0]
    monkeypatch.setattr(log_window.time, "perf_counter", lambda: now[0])
    return now


def test_a_window_reports_its_own_steps_and_the_next_starts_empty(clock):
    window = LogWindow(samples_per_step=6)  # e.g. batch 1 x accumulation 3 x 2 ranks
    with window.waiting_for_data():
        clock[0] += 1.0
    window.add(2.0)
    clock[0] += 3.0  # the step itself
    window.add(4.0)
    assert window.close() == {"loss": 3.0, "samples_per_s": 2 * 6 / 4.0, "data_wait": 1.0 / 4.0}

    clock[0] += 2.0
    window.add(1.0)
    assert window.close() == {"loss": 1.0, "samples_per_s": 6 / 2.0, "data_wait": 0.0}


def test_restart_forgets_the_time_before_the_loop(clock):
    window = LogWindow(samples_per_step=1)
    clock[0] += 50.0  # set-up time before training starts
    window.restart()
    clock[0] += 5.0
    window.add(0.5)
    assert window.close()["samples_per_s"] == pytest.approx(1 / 5.0)
