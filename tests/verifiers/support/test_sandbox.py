"""run_isolated: results, errors, crashes, and the time limit from the main thread, threads and processes."""

import multiprocessing
import os
import pickle
import threading
import time

import pytest

from r1zero.verifiers.support import sandbox
from r1zero.verifiers.support.sandbox import VerifierCrash, VerifierTimeout, in_worker, run_isolated

OVERRUN_LIMIT = 1.0  # seconds a call may run past its time limit


# Top-level helpers: the child imports them by module name.
def add(a, b=0):
    return a + b


def sleep_then_return(seconds):
    time.sleep(seconds)
    return seconds


def busy_loop():
    while True:
        pass


def raise_value_error():
    raise ValueError("bad value 42")


def exit_hard():
    os._exit(7)


def raise_system_exit():
    raise SystemExit(3)


def child_pid_and_flag():
    return os.getpid(), in_worker()


def timed_hang(timeout):
    """Elapsed seconds of a call that hangs, and whether it raised VerifierTimeout."""
    start = time.monotonic()
    try:
        run_isolated(sleep_then_return, 30, timeout=timeout)
    except VerifierTimeout:
        return time.monotonic() - start, True
    return time.monotonic() - start, False


def test_returns_result_and_runs_in_another_process():
    assert run_isolated(add, 2, b=3, timeout=10) == 5
    pid, flag = run_isolated(child_pid_and_flag, timeout=10)
    assert pid != os.getpid()
    assert flag is True
    assert in_worker() is False


def test_child_is_persistent_across_calls():
    first = run_isolated(child_pid_and_flag, timeout=10)[0]
    assert run_isolated(child_pid_and_flag, timeout=10)[0] == first


def test_exception_is_reraised_and_child_kept():
    pid = run_isolated(child_pid_and_flag, timeout=10)[0]
    with pytest.raises(ValueError, match="bad value 42") as info:
        run_isolated(raise_value_error, timeout=10)
    assert "raise_value_error" in str(info.value.__cause__)
    assert run_isolated(child_pid_and_flag, timeout=10)[0] == pid


def test_crash_raises_and_child_is_replaced():
    pid = run_isolated(child_pid_and_flag, timeout=10)[0]
    with pytest.raises(VerifierCrash, match="exit code 7"):
        run_isolated(exit_hard, timeout=10)
    assert run_isolated(child_pid_and_flag, timeout=10)[0] != pid
    with pytest.raises(VerifierCrash, match="SystemExit"):
        run_isolated(raise_system_exit, timeout=10)
    assert run_isolated(add, 1, 1, timeout=10) == 2


@pytest.mark.parametrize("fn", [sleep_then_return, busy_loop])
def test_overrun_from_main_thread_is_killed_within_limit(fn):
    run_isolated(add, 0, timeout=10)  # warm child
    pid = run_isolated(child_pid_and_flag, timeout=10)[0]
    start = time.monotonic()
    with pytest.raises(VerifierTimeout, match="limit"):
        run_isolated(fn, *([30] if fn is sleep_then_return else []), timeout=0.5)
    elapsed = time.monotonic() - start
    assert 0.5 <= elapsed <= 0.5 + OVERRUN_LIMIT
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # the hung child is gone
    assert run_isolated(add, 1, 2, timeout=10) == 3  # and replaced


def test_overrun_from_threads_each_within_limit():
    results = []

    def worker():
        results.append(timed_hang(0.5))

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(results) == 3
    for elapsed, timed_out in results:
        assert timed_out
        assert elapsed <= 0.5 + OVERRUN_LIMIT  # includes starting a fresh child per thread


def test_threads_get_their_own_children_and_run_in_parallel():
    pids, ends = [], []
    barrier = threading.Barrier(3)

    def worker():
        pids.append(run_isolated(child_pid_and_flag, timeout=30)[0])  # start this thread's child
        barrier.wait()
        run_isolated(sleep_then_return, 0.6, timeout=30)
        ends.append(time.monotonic())

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(set(pids)) == 3
    assert max(ends) - min(ends) < 0.6  # the three sleeps overlapped instead of queueing


def test_slow_start_counts_against_the_limit_but_is_not_killed():
    outcome = {}

    def worker():
        start = time.monotonic()
        try:
            run_isolated(add, 1, timeout=0.001)  # a fresh thread: its child cannot be ready in 1 ms
        except VerifierTimeout as exc:
            outcome["first"] = (str(exc), time.monotonic() - start)
        outcome["second"] = run_isolated(add, 2, 3, timeout=30)
        outcome["starts"] = sandbox._thread_child().starts

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join(60)
    message, elapsed = outcome["first"]
    assert "still starting" in message and elapsed < 0.5
    assert outcome["second"] == 5
    assert outcome["starts"] == 2  # the starting child was kept (plus one standby), not relaunched


def test_prestart_starts_the_child_ahead_of_the_first_call():
    outcome = {}

    def worker():
        sandbox.prestart(add)
        outcome["started"] = sandbox._thread_child().alive  # running before any call
        outcome["ready"] = sandbox._thread_child().wait_ready(time.monotonic() + 30)
        outcome["result"] = run_isolated(add, 1, 1, timeout=0.5)

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join(60)
    assert outcome == {"started": True, "ready": True, "result": 2}


def test_standby_takes_over_after_a_timeout():
    run_isolated(add, 0, timeout=10)
    child = sandbox._thread_child()
    deadline = time.monotonic() + 10
    while child.standby_pid is None and time.monotonic() < deadline:
        run_isolated(add, 0, timeout=10)
    standby = child.standby_pid
    assert standby is not None
    with pytest.raises(VerifierTimeout):
        run_isolated(sleep_then_return, 30, timeout=0.3)
    assert child.pid == standby
    assert run_isolated(child_pid_and_flag, timeout=10)[0] == standby


def test_overrun_from_a_daemonic_worker_process():
    # multiprocessing refuses to start children from daemonic processes; run_isolated must still work.
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(1) as pool:
        elapsed, timed_out = pool.apply(timed_hang, (0.5,))
    assert timed_out
    assert elapsed <= 0.5 + OVERRUN_LIMIT


@pytest.mark.parametrize("timeout", [0, -1, float("nan"), float("inf"), "5"])
def test_bad_timeout_is_refused(timeout):
    with pytest.raises(ValueError, match="timeout"):
        run_isolated(add, 1, timeout=timeout)


def test_unpicklable_function_is_refused_before_the_call():
    with pytest.raises((pickle.PicklingError, AttributeError), match="pickle"):
        run_isolated(lambda: 1, timeout=5)


def test_shutdown_kills_thread_child():
    pid = run_isolated(child_pid_and_flag, timeout=10)[0]
    sandbox.shutdown()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert run_isolated(add, 4, timeout=10) == 4


def test_a_forked_copy_does_not_kill_the_parents_children():
    pid = run_isolated(child_pid_and_flag, timeout=10)[0]
    forked = os.fork()
    if forked == 0:  # the copy drops its inherited handles, as a DataLoader fork worker would
        try:
            sandbox.shutdown()
            run_isolated(add, 1, timeout=30)  # and may start children of its own
        finally:
            os._exit(0)
    os.waitpid(forked, 0)
    assert run_isolated(child_pid_and_flag, timeout=10)[0] == pid
