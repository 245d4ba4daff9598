"""Score many responses in worker processes, with a wall-clock limit on every item.

``verify_batch`` is what the trainer calls every step. Items go to persistent worker processes
(``sandbox.IsolatedChild``: fresh interpreters, safe to start from any thread or process) in chunks
cut from the items sorted by gold and response (so a worker's caches see each string's repeats),
one message per chunk; each worker sends its verdicts back in batches (at least every
``FLUSH_SECONDS``) and marks the item it is on in a shared ``ProgressBoard``, where each item's clock
starts. So:

- a hung item costs at most ``timeout`` seconds: its worker is killed (SIGKILL) and replaced by a
  standby that already has the verifier imported, the item comes back as
  ``Verdict(reason="timeout", reward=0)``, and the rest of its chunk is re-queued;
- a worker that dies (segfault, ``os._exit``) costs its current item (``reason="error"``) and is replaced;
- a verifier that raises gives ``reason="error"`` for that item (see ``guarded``), never an exception;
- results come back in input order; ``workers=1`` still isolates the items from the caller.

Starting a worker and importing its verifier is bounded by ``sandbox.STARTUP_TIMEOUT``, not by
``timeout``. Workers are reused across calls (a ``VerifierPool``; ``verify_batch`` keeps one per worker
count). Inside a worker, ``sandbox.in_worker()`` is True, so verifiers need not isolate themselves again.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import logging
import math
import mmap
import os
import pickle
import sys
import tempfile
import threading
import time
import weakref
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.connection import wait

from r1zero.verifiers import base
from r1zero.verifiers.base import Verdict, Verifier, get_verifier
from r1zero.verifiers.support.sandbox import (
    STARTUP_TIMEOUT,
    IsolatedChild,
    VerifierCrash,
    emit,
    freeze_imports,
)

__all__ = ["VerifierPool", "call_verifier", "guarded", "verify_batch"]

logger = logging.getLogger(__name__)

#: Most items sent to a worker in one message.
MAX_CHUNK = 64
#: A worker sends its finished verdicts at least this often (seconds); each item's clock starts when
#: the worker starts it (``ProgressBoard``), not when its verdict reaches the parent.
FLUSH_SECONDS = 0.01
_STARTUP_RETRIES = 2


def call_verifier(verifier: Verifier, response: str, gold: str, meta: dict | None = None) -> Verdict:
    """``verifier(response, gold, **meta)``, but an exception or a non-Verdict result gives reason "error".

    >>> call_verifier(lambda r, g: 1 / 0, "x", "y").reason
    'error'
    """
    try:
        verdict = verifier(response, gold, **(meta or {}))
    except (Exception, SystemExit) as exc:
        logger.warning("verifier %s raised %s: %s", _name(verifier), type(exc).__name__, exc)
        return _failed("error")
    if not isinstance(verdict, Verdict):
        logger.warning("verifier %s returned %s, not a Verdict", _name(verifier), type(verdict).__name__)
        return _failed("error")
    return verdict


def guarded(verifier: Verifier) -> Verifier:
    """Wrap a verifier so that it never raises (see ``call_verifier``).

    >>> guarded(lambda r, g, **m: int("x"))("a", "b").reason
    'error'
    """

    @functools.wraps(verifier)
    def safe(response: str, gold: str, **meta) -> Verdict:
        return call_verifier(verifier, response, gold, meta)

    return safe


def _failed(reason: str) -> Verdict:
    return Verdict(0.0, False, False, reason, None, {"accuracy": 0.0, "format": 0.0})


def _name(fn: object) -> str:
    return getattr(fn, "__qualname__", repr(fn))


# ----------------------------------------------------------------------------- worker side

_RESOLVED: dict[str, Verifier] = {}


def _resolve(spec: str) -> Verifier:
    verifier = _RESOLVED.get(spec)
    if verifier is None:
        verifier = _RESOLVED[spec] = get_verifier(spec)
        warm_up = getattr(verifier, "warm_up", None)  # e.g. math loads sympy here, before any item's limit
        if callable(warm_up):
            warm_up()
        freeze_imports()
    return verifier


class _Resolve:
    """Unpickling this resolves a verifier spec: a fresh or standby worker imports its verifier early."""

    def __init__(self, spec: str) -> None:
        self.spec = spec

    def __reduce__(self):
        return _resolve, (self.spec,)


class ProgressBoard:
    """Where each worker writes which item of its chunk it is on, and since when: a small shared file.

    Verdicts travel in batches, so the parent cannot tell from its messages which item is running; it
    reads this board instead, to give every item its own clock and to know, when it kills a worker,
    which item hung and which ones had finished unsent. A slot is ``(position, started, position)``,
    three 8-byte words, each stored by one aligned write; the repeated position is a seqlock: the
    writer stores the words in order and ``read`` loads them in reverse, so equal positions mean
    ``started`` belongs to them. (Not ``struct.pack_into``: it zeroes the whole slot before writing,
    which a reader caught as "item 0, started at time 0", an instant timeout.) Both sides map the
    same file (in ``/dev/shm`` where there is one).
    """

    _WORDS = 3

    def __init__(self, slots: int, path: str | None = None) -> None:
        """A new board of ``slots`` slots (every position -1), or the existing file ``path`` (a worker's)."""
        self.owner = path is None
        if path is None:
            where = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
            fd, path = tempfile.mkstemp(prefix="r1zero-verify-", suffix=".board", dir=where)
            os.ftruncate(fd, slots * self._WORDS * 8)
            os.close(fd)
        self.path = path
        # the creator removes the file when closed, collected or at exit (not a forked child)
        self._unlink = weakref.finalize(self, _unlink_if_owner, path, os.getpid()) if self.owner else None
        with open(path, "r+b") as f:
            self._map = mmap.mmap(f.fileno(), 0)  # the whole file
        self._ints = memoryview(self._map).cast("q")
        self._floats = memoryview(self._map).cast("d")
        for slot in range(slots):
            self.write(slot, -1, 0.0)

    def write(self, slot: int, position: int, started: float) -> None:
        base = slot * self._WORDS
        self._ints[base] = position
        self._floats[base + 1] = started
        self._ints[base + 2] = position

    def read(self, slot: int) -> tuple[int, float]:
        """``(position, started)`` of ``slot``; position -1 before the worker starts its first item."""
        base = slot * self._WORDS
        while True:
            last, started, first = self._ints[base + 2], self._floats[base + 1], self._ints[base]
            if first == last:
                return first, started

    def close(self) -> None:
        self._ints.release()
        self._floats.release()
        self._map.close()
        if self._unlink is not None:
            self._unlink()


def _unlink_if_owner(path: str, owner_pid: int) -> None:
    if os.getpid() == owner_pid:
        with contextlib.suppress(OSError):
            os.unlink(path)


_BOARDS: dict[str, ProgressBoard] = {}


def _verify_chunk(spec: str, items: list[tuple[int, str, str, dict]], board: str, slot: int) -> int:
    """Run in a worker: resolve the verifier, say "ready", then stream verdicts in batches.

    Before each item the worker marks it on the board (``ProgressBoard``); verdicts go back at most
    ``FLUSH_SECONDS`` after the previous message, at the end of the chunk, and before an exception
    leaves. One message per item had cost the parent as much CPU as a fast item costs its worker, so
    two workers shared their two cores with a busy parent.
    """
    verifier = _resolve(spec)
    progress = _BOARDS.get(board)
    if progress is None:
        progress = _BOARDS[board] = ProgressBoard(0, board)
    emit(("ready", None))
    done: list[tuple[int, Verdict]] = []
    sent = time.monotonic()
    try:
        for position, (index, response, gold, meta) in enumerate(items):
            progress.write(slot, position, time.monotonic())
            done.append((index, call_verifier(verifier, response, gold, meta)))
            if time.monotonic() - sent >= FLUSH_SECONDS:
                emit(("items", done))
                done, sent = [], time.monotonic()
    finally:
        if done:
            emit(("items", done))
    return len(items)


# ----------------------------------------------------------------------------- parent side


@dataclass
class _Task:
    """A chunk in flight on one worker."""

    items: list[tuple[int, str, str, dict]]
    deadline: float  # until "ready": the startup limit; then the limit of the item in progress
    ready: bool = False
    done: int = 0  # verdicts received (always the first ``done`` items: a worker goes in order)


class VerifierPool:
    """Persistent worker processes that score items with a per-item wall-clock limit.

    >>> with VerifierPool(workers=1) as pool:
    ...     [v.reason for v in pool.verify("integer", ["<answer>4</answer>", "5"], ["4", "4"])]
    ['correct', 'wrong']

    Thread-safe: concurrent ``verify`` calls are served one after the other. With ``standby`` (default)
    each worker keeps a second started interpreter, so a worker killed for a hung item is replaced at
    once instead of after an interpreter start and verifier import (~0.5 s for ``math``, more under load);
    it doubles the number of processes.
    """

    def __init__(self, workers: int = 1, *, chunk_size: int | None = None, standby: bool = True) -> None:
        if not isinstance(workers, int) or workers < 1:
            raise ValueError(f"workers must be an integer >= 1, got {workers!r}")
        if chunk_size is not None and (not isinstance(chunk_size, int) or chunk_size < 1):
            raise ValueError(f"chunk_size must be None or an integer >= 1, got {chunk_size!r}")
        self.workers = workers
        self.chunk_size = chunk_size
        self._children = [IsolatedChild(standby=standby) for _ in range(workers)]
        self._board: ProgressBoard | None = None  # made by the first ``verify``
        self._lock = threading.Lock()

    def __enter__(self) -> VerifierPool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Kill the worker processes and their standbys (a later ``verify`` starts new ones)."""
        for child in self._children:
            child.close()
        if self._board is not None:
            self._board.close()
            self._board = None

    @property
    def pids(self) -> list[int | None]:
        """Process ids of the workers (None where one is not running)."""
        return [child.pid if child.alive else None for child in self._children]

    def verify(
        self,
        name: str,
        responses: Sequence[str],
        golds: Sequence[str],
        *,
        metas: Sequence[dict] | None = None,
        timeout: float = 5.0,
        progress: bool = False,
    ) -> list[Verdict]:
        """Verdicts of ``name`` for each (response, gold, meta), in input order. See ``verify_batch``."""
        spec = _portable_spec(name)
        items = _items(responses, golds, metas)
        if not isinstance(timeout, int | float) or not math.isfinite(timeout) or timeout <= 0:
            raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
        with self._lock:
            if self._board is None:
                self._board = ProgressBoard(self.workers)
            return _Run(self, spec, items, float(timeout), progress).run()


class _Run:
    """One ``verify`` call: dispatch chunks, collect verdicts, enforce deadlines."""

    def __init__(self, pool: VerifierPool, spec: str, items: list, timeout: float, progress: bool):
        self.children, self.board = pool._children, pool._board
        self.spec, self.timeout = spec, timeout
        size = pool.chunk_size or max(1, min(MAX_CHUNK, math.ceil(len(items) / (4 * len(self.children)))))
        items = sorted(items, key=_affinity)  # results land by each item's index: order is kept
        self.queue = deque(items[i : i + size] for i in range(0, len(items), size))
        self.results: list[Verdict | None] = [None] * len(items)
        self.active: dict[int, _Task] = {}
        self.startup_failures = 0
        self.bar = _progress_bar(len(items), spec) if progress else None
        for child in self.children:
            child.warm = pickle.dumps(_Resolve(spec))

    def run(self) -> list[Verdict]:
        try:
            while self.queue or self.active:
                self._dispatch()
                by_conn = {self.children[i].connection: i for i in self.active}
                deadline = min(self._deadline(i) for i in self.active)
                for conn in wait(list(by_conn), timeout=max(0.0, deadline - time.monotonic())):
                    self._receive(by_conn[conn])
                self._enforce_deadlines()
        except BaseException:
            for i in self.active:  # their state is unknown; they restart on the next call
                self.children[i].kill()
            raise
        finally:
            if self.bar is not None:
                self.bar.close()
        assert all(v is not None for v in self.results)
        return self.results  # type: ignore[return-value]

    def _dispatch(self) -> None:
        for i, child in enumerate(self.children):
            if i not in self.active and self.queue:
                chunk = self.queue.popleft()
                self.active[i] = _Task(chunk, time.monotonic() + STARTUP_TIMEOUT)
                self.board.write(i, -1, 0.0)
                call = (_verify_chunk, (self.spec, chunk, self.board.path, i), {})
                try:
                    child.send_call(pickle.dumps(call))
                except VerifierCrash:
                    self._lost(i, "error")

    def _receive(self, i: int) -> None:
        task, conn = self.active[i], self.children[i].connection
        try:
            message = conn.recv()
        except (EOFError, OSError):
            self._lost(i, "error")
            return
        kind = message[0]
        if kind == "ready":  # the interpreter is up (and has imported the verifier)
            self.children[i].mark_ready()
        elif kind == "emit":
            tag, verdicts = message[1]
            if tag == "ready":
                task.ready, self.startup_failures = True, 0
                task.deadline = time.monotonic() + self.timeout  # until the first item is on the board
                self.children[i].prepare_standby()
            else:
                for index, verdict in verdicts:
                    self._store(index, verdict)
                task.done += len(verdicts)
        elif kind == "ok":
            del self.active[i]
        elif kind == "err" and not task.ready:  # the verifier could not be resolved or imported
            raise message[1]
        elif kind == "err":  # e.g. SystemExit inside a verifier: the item failed, the worker lives
            del self.active[i]
            self._fail(task, task.done, "error")  # it sent every verdict before the failing item

    def _deadline(self, i: int) -> float:
        """When worker ``i`` overruns: its startup limit, or the limit of the item on the board."""
        task = self.active[i]
        if task.ready:
            position, started = self.board.read(i)
            if position >= 0:
                task.deadline = started + self.timeout
        return task.deadline

    def _enforce_deadlines(self) -> None:
        now = time.monotonic()
        for i in list(self.active):
            conn = self.children[i].connection
            while i in self.active and conn.poll(0):  # a result that raced the deadline still counts
                self._receive(i)
            if i in self.active and now >= self._deadline(i):
                self._lost(i, "timeout")

    def _lost(self, i: int, reason: str) -> None:
        """Worker ``i`` timed out or died: fail its current item, re-queue the rest, replace it."""
        task = self.active.pop(i)
        self.children[i].kill()
        if not task.ready:
            self.startup_failures += 1
            if self.startup_failures > _STARTUP_RETRIES:
                raise RuntimeError(
                    f"verifier workers for {self.spec!r} died or hung {self.startup_failures} times "
                    "while starting (importing the verifier)"
                )
            self.queue.appendleft(task.items)
            return
        # the item on the board is the one that hung or crashed; those before it finished, but their
        # verdicts died with the worker (not sent yet): they run again
        position = max(self.board.read(i)[0], task.done)
        self._fail(task, position, reason)
        logger.warning("verifier %r: item %d %s", self.spec, task.items[position][0], reason)

    def _fail(self, task: _Task, position: int, reason: str) -> None:
        """Item ``position`` of the chunk failed; re-queue the unanswered ones before and after it."""
        self._store(task.items[position][0], _failed(reason))
        rest = task.items[task.done : position] + task.items[position + 1 :]
        if rest:
            self.queue.appendleft(rest)

    def _store(self, index: int, verdict: Verdict) -> None:
        self.results[index] = verdict
        if self.bar is not None:
            self.bar.update(1)


def _affinity(item: tuple[int, str, str, dict]) -> tuple[str, str]:
    """Chunks are cut from items sorted by (gold, response): a GRPO group's items, which share a gold,
    and repeated responses reach the same worker, whose caches then parse each string once. Spread over
    two workers, every worker paid the cold parse: 0.17 -> 0.23 CPU ms per item on replicated rows."""
    return item[2], item[1]


def _items(responses: Sequence[str], golds: Sequence[str], metas: Sequence[dict] | None) -> list:
    if len(responses) != len(golds) or (metas is not None and len(metas) != len(responses)):
        lengths = f"{len(responses)} responses, {len(golds)} golds"
        lengths += "" if metas is None else f", {len(metas)} metas"
        raise ValueError(f"verify_batch needs one gold (and meta) per response, got {lengths}")
    metas = metas if metas is not None else [{}] * len(responses)
    for k, meta in enumerate(metas):
        if not isinstance(meta, dict):
            raise ValueError(f"metas[{k}] must be a dict, got {type(meta).__name__}")
    return [(k, r, g, dict(m)) for k, (r, g, m) in enumerate(zip(responses, golds, metas, strict=True))]


def _portable_spec(spec: str) -> str:
    """A spec a fresh worker process can resolve: a registered name may point at a function that was
    registered at run time (e.g. in a test module); then name it by ``module:function`` or file path."""
    fn = get_verifier(spec)  # fails early, in the caller, for an unknown verifier
    module = getattr(fn, "__module__", "") or ""
    if spec not in base._REGISTRY or module.startswith("r1zero.verifiers."):
        return spec
    if module == "__main__":
        raise ValueError(
            f"verifier {spec!r} is defined in __main__, which worker processes cannot import; "
            "move it into a module or a .py file and pass 'module:function' or the file path"
        )
    if module.startswith("r1zero_user_verifier_"):
        return f"{sys.modules[module].__file__}:{fn.__name__}"
    return f"{module}:{fn.__name__}"


def _progress_bar(total: int, spec: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=f"verify {spec}", unit="item")


_POOLS: dict[tuple[int, int], VerifierPool] = {}
_POOLS_LOCK = threading.Lock()


def verify_batch(
    name: str,
    responses: Sequence[str],
    golds: Sequence[str],
    *,
    metas: Sequence[dict] | None = None,
    workers: int = 1,
    timeout: float = 5.0,
    progress: bool = False,
) -> list[Verdict]:
    """Verdicts of verifier ``name`` on each (response, gold[, meta]) in worker processes, in input order.

    A hung item costs at most ``timeout`` seconds and comes back with reason "timeout"; a crashed
    worker is replaced and its item comes back with reason "error". The workers of a given count are
    kept between calls (the trainer calls this every step). ``workers=0`` verifies in this process,
    with no time limit (only for verifiers that cannot hang); an item whose verifier raises comes back
    with reason "error" there too.

    >>> [v.reason for v in verify_batch("integer", ["<answer>12</answer>", "<answer>13</answer>"], ["12", "12"])]
    ['correct', 'wrong']
    """
    if workers == 0:
        return _verify_here(name, responses, golds, metas or [{}] * len(responses))
    with _POOLS_LOCK:
        key = (os.getpid(), workers)
        pool = _POOLS.get(key)
        if pool is None:
            pool = _POOLS[key] = VerifierPool(workers)
    return pool.verify(name, responses, golds, metas=metas, timeout=timeout, progress=progress)


def _verify_here(
    name: str, responses: Sequence[str], golds: Sequence[str], metas: Sequence[dict]
) -> list[Verdict]:
    """``verify_batch`` with no workers: in this process; a raising item scores reason "error" (logged once)."""
    fn = get_verifier(name)
    out, failed = [], None
    for response, gold, meta in zip(responses, golds, metas, strict=True):
        try:
            out.append(fn(response, gold, **meta))
        except Exception as exc:  # the verifier broke its contract: the item scores 0, the caller goes on
            failed = failed or exc
            out.append(Verdict(0.0, False, False, "error", None, {}))
    if failed is not None:
        logger.warning(
            "verifier %r raised %s: %s (scored as reason 'error')", name, type(failed).__name__, failed
        )
    return out


@atexit.register
def _close_pools() -> None:
    for pool in _POOLS.values():
        pool.close()
