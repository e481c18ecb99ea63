"""The scheduler's account of a cell's threads (:func:`l2obench.measure.cpu_waiting`): the
seconds they ran and the seconds they waited for a core, checked against situations whose
answer is known: a body that sleeps, a thread started inside the body, and a process made to
share its one CPU with a spinning process (the scheduler gives each about half)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import pytest

from l2obench.measure import cpu_waiting, thread_cpu_times

pytestmark = pytest.mark.skipif(thread_cpu_times() is None,
                                reason="the OS gives no per-thread scheduler statistics")


def _spin_then_wait(spun: threading.Event, stop: threading.Event) -> None:
    """Run 0.2 s of CPU time by this thread's own clock, then block until told to end."""
    start = time.thread_time()
    while time.thread_time() - start < 0.2:
        pass
    spun.set()
    stop.wait()


def test_a_sleeping_body_runs_and_waits_for_almost_nothing() -> None:
    with cpu_waiting() as cpu:
        time.sleep(0.3)
    assert cpu.cpu_s is not None and cpu.wait_s is not None
    assert 0 <= cpu.cpu_s < 0.1 and 0 <= cpu.wait_s < 0.1


def test_a_thread_started_inside_the_body_is_counted() -> None:
    spun, stop = threading.Event(), threading.Event()
    worker = threading.Thread(target=_spin_then_wait, args=(spun, stop))
    try:
        with cpu_waiting() as cpu:
            worker.start()
            assert spun.wait(timeout=30)
    finally:
        stop.set()
        worker.join()
    assert cpu.cpu_s is not None and 0.2 <= cpu.cpu_s < 0.2 + 0.15


SHARED_CORE = """
import json, os, subprocess, sys, time
from l2obench.measure import cpu_waiting
cpu = min(os.sched_getaffinity(0))
os.sched_setaffinity(0, {cpu})
hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])  # inherits the one CPU
try:
    time.sleep(0.2)
    with cpu_waiting() as reading:
        end = time.perf_counter() + 1.5
        while time.perf_counter() < end:
            pass
finally:
    hog.kill()
    hog.wait()
print(json.dumps({"cpu_s": reading.cpu_s, "wait_s": reading.wait_s}))
"""


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="no CPU affinity here")
def test_sharing_one_cpu_with_a_spinning_process_is_measured_as_waiting() -> None:
    # Two runnable processes on one CPU: the scheduler gives each about half of 1.5 s, so the
    # measured process waits about as long as it runs.
    out = subprocess.run([sys.executable, "-c", SHARED_CORE], capture_output=True, text=True,
                         check=True, timeout=60).stdout
    reading = json.loads(out.strip().splitlines()[-1])
    assert reading["cpu_s"] + reading["wait_s"] == pytest.approx(1.5, abs=0.3)
    assert reading["wait_s"] > 0.5 * reading["cpu_s"]
