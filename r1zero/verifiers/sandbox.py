"""Run a function in a persistent child process under a wall-clock limit, from any thread or process.

Why not ``signal.alarm``: SIGALRM reaches only the main thread of the main interpreter, so
math-verify's own timeout does nothing in a trainer's worker thread, and a power tower such as
``9**9**9**9`` then hangs training. A child process can always be killed.

Design:

- One persistent child per calling thread (``threading.local``): calls from different threads run in
  parallel and share nothing; a call costs one pipe round trip, not a process start.
- Children are fresh interpreters (``subprocess``, ``sys.executable -c ...``), not ``multiprocessing``
  fork/forkserver children: ``fork`` from a trainer with live torch or tokenizer threads can deadlock
  the child, and ``multiprocessing`` refuses to start children from daemonic processes
  (``multiprocessing.Pool`` and DataLoader workers), where this must work too. The price is the start
  of an interpreter plus the import of the function's module, paid once per thread and after a kill,
  and not counted against the time limit (it is bounded by ``STARTUP_TIMEOUT`` instead).
- On overrun the child is killed (SIGKILL) and a replacement starts at once in the background, already
  importing the function's module, so the call returns within ``timeout`` plus a few milliseconds.

POSIX only (Linux, macOS): the child talks over an inherited socket.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import pickle
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
import weakref
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

__all__ = [
    "STARTUP_TIMEOUT",
    "IsolatedChild",
    "VerifierCrash",
    "VerifierTimeout",
    "in_worker",
    "run_isolated",
    "shutdown",
]

logger = logging.getLogger(__name__)

#: Seconds a fresh child may take to start and import the called function's module.
STARTUP_TIMEOUT = 60.0

_IN_WORKER = False
_CHILD_CONN: Connection | None = None
_local = threading.local()
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])
_BOOTSTRAP = (
    "import sys; sys.path.insert(0, {root!r}); "
    "from r1zero.verifiers.sandbox import _child_main; _child_main(int(sys.argv[1]))"
)


class VerifierTimeout(TimeoutError):
    """The isolated call ran past its wall-clock limit; its child process was killed."""


class VerifierCrash(RuntimeError):
    """The child process died during the call (e.g. a segfault, ``os._exit``) or the call raised
    ``SystemExit``/``KeyboardInterrupt``; the child was replaced."""


class _RemoteTraceback(Exception):
    def __init__(self, text: str):
        super().__init__(text)
        self.text = text

    def __str__(self) -> str:
        return f'\n"""\n{self.text}"""'


def in_worker() -> bool:
    """True inside a child started by this module (a ``verify_batch`` worker or a ``run_isolated``
    child): code there already runs under a wall-clock limit, so it need not isolate itself again.

    >>> in_worker()
    False
    """
    return _IN_WORKER


class IsolatedChild:
    """A persistent child interpreter that runs pickled calls one at a time.

    Used by ``run_isolated`` (one per thread) and by ``r1zero.verifiers.pool`` (one per worker).
    Not thread-safe: each instance belongs to one thread at a time.
    """

    def __init__(self) -> None:
        self._owner_pid = os.getpid()
        self._popen: subprocess.Popen | None = None
        self._conn: Connection | None = None
        self._finalizer: weakref.finalize | None = None
        self.starts = 0

    @property
    def alive(self) -> bool:
        return self._popen is not None and self._popen.poll() is None

    @property
    def pid(self) -> int | None:
        return None if self._popen is None else self._popen.pid

    def start(self, warm: bytes | None = None) -> None:
        """Start the child (if not running); ``warm`` is a pickled object whose modules it imports now."""
        if self.alive:
            return
        self.kill()
        parent_sock, child_sock = socket.socketpair()
        try:
            popen = subprocess.Popen(
                [sys.executable, "-c", _BOOTSTRAP.format(root=_PACKAGE_ROOT), str(child_sock.fileno())],
                pass_fds=[child_sock.fileno()],
                stdin=subprocess.DEVNULL,
                close_fds=True,
            )
        finally:
            child_sock.close()
        conn = Connection(parent_sock.detach())
        self._popen, self._conn = popen, conn
        self._finalizer = weakref.finalize(self, _kill, popen, conn)
        self.starts += 1
        conn.send(("init", list(sys.path)))
        if warm is not None:
            conn.send(("warm", warm))

    def send_call(self, payload: bytes) -> None:
        """Send a pickled ``(fn, args, kwargs)``; the child answers ``started``, then ``ok``/``err``."""
        if os.getpid() != self._owner_pid:  # inherited through fork: the child belongs to our parent
            self._popen = self._conn = self._finalizer = None
            self._owner_pid = os.getpid()
        self.start()
        assert self._conn is not None
        try:
            self._conn.send(("call", payload))
        except OSError as exc:  # died between start and send
            self.kill()
            raise VerifierCrash(f"isolated child died before the call: {exc}") from exc

    def receive(self, deadline: float) -> tuple | None:
        """The child's next message, or None at ``deadline`` (``time.monotonic()``); VerifierCrash on death."""
        assert self._conn is not None and self._popen is not None
        try:
            if not self._conn.poll(max(0.0, deadline - time.monotonic())):
                return None
            return self._conn.recv()
        except (EOFError, OSError) as exc:
            code = self._popen.wait(timeout=5)
            self.kill()
            raise VerifierCrash(f"isolated child died (exit code {code})") from exc

    @property
    def connection(self) -> Connection | None:
        return self._conn

    def kill(self) -> None:
        """Kill the child at once (SIGKILL) and reap it."""
        if self._finalizer is not None:
            self._finalizer()
        self._popen = self._conn = self._finalizer = None


def _kill(popen: subprocess.Popen, conn: Connection) -> None:
    conn.close()
    if popen.poll() is None:
        popen.kill()
    try:
        popen.wait(timeout=5)
    except subprocess.TimeoutExpired:  # pragma: no cover - SIGKILL does not fail on POSIX
        logger.warning("isolated child %d did not exit after SIGKILL", popen.pid)


def _thread_child() -> IsolatedChild:
    child = getattr(_local, "child", None)
    if child is None:
        child = _local.child = IsolatedChild()
    return child


def shutdown() -> None:
    """Kill the calling thread's child now (it is also killed when the thread or process ends)."""
    child = getattr(_local, "child", None)
    if child is not None:
        child.kill()
        _local.child = None


def run_isolated(fn: Callable[..., Any], *args: Any, timeout: float, **kwargs: Any) -> Any:
    """Return ``fn(*args, **kwargs)`` computed in this thread's child process, within ``timeout`` seconds.

    ``fn`` must be picklable by reference (a top-level function of an importable module, not of
    ``__main__``); arguments and result must be picklable. An exception raised by ``fn`` is re-raised
    here (with the child's traceback as its cause) and the child is kept.

    Raises:
        VerifierTimeout: ``fn`` ran past ``timeout``; the child was killed and replaced.
        VerifierCrash: the child died during the call; it was replaced.
    """
    if not isinstance(timeout, int | float) or not math.isfinite(timeout) or timeout <= 0:
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
    if getattr(fn, "__module__", None) == "__main__":
        raise ValueError(
            f"run_isolated needs a function importable by module name, got __main__.{fn.__qualname__}; "
            "move it into a module"
        )
    payload = pickle.dumps((fn, args, kwargs))
    child = _thread_child()
    try:
        child.send_call(payload)
        message = child.receive(time.monotonic() + max(STARTUP_TIMEOUT, timeout))
        if message is None:
            child.kill()
            raise VerifierTimeout(f"isolated child did not start within {STARTUP_TIMEOUT:g} s")
        if message[0] == "started":
            message = child.receive(time.monotonic() + timeout)
        if message is None:
            child.kill()
            child.start(warm=pickle.dumps(fn))
            raise VerifierTimeout(f"{_name(fn)} ran past its {timeout:g} s limit; its process was killed")
    except (VerifierTimeout, VerifierCrash):
        raise
    except BaseException:  # e.g. KeyboardInterrupt while waiting: the child's state is unknown
        child.kill()
        raise
    return _unwrap(message)


def _unwrap(message: tuple) -> Any:
    kind = message[0]
    if kind == "ok":
        return message[1]
    if kind == "err":
        raise message[1] from _RemoteTraceback(message[2])
    raise VerifierCrash(f"unexpected message from isolated child: {kind!r}")


def _name(fn: Callable) -> str:
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"


# ----------------------------------------------------------------------------- child side


def emit(obj: Any) -> None:
    """From inside an isolated call, send ``("emit", obj)`` to the parent (progress, streamed results)."""
    if _CHILD_CONN is None:
        raise RuntimeError("emit() works only inside an isolated child")
    _CHILD_CONN.send(("emit", obj))


def _child_main(fd: int) -> None:
    """Loop of the child interpreter: receive calls, run them, send results, until the parent closes."""
    global _IN_WORKER, _CHILD_CONN
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    conn = _CHILD_CONN = Connection(fd)
    _IN_WORKER = True
    try:
        kind, sys_path = conn.recv()
        sys.path[:] = sys_path
        while True:
            kind, payload = conn.recv()
            _handle(conn, kind, payload)
    except (EOFError, OSError, KeyboardInterrupt):
        return


def _handle(conn: Connection, kind: str, payload: bytes) -> None:
    if kind == "warm":
        with contextlib.suppress(Exception):  # a failure is reported when the call itself comes
            pickle.loads(payload)
        return
    try:
        fn, args, kwargs = pickle.loads(payload)
    except Exception as exc:
        _send_error(conn, exc)
        return
    conn.send(("started", None))
    try:
        result = fn(*args, **kwargs)
    except Exception as exc:
        _send_error(conn, exc)
        return
    except BaseException as exc:  # SystemExit, KeyboardInterrupt: never propagate those to the parent
        _send_error(conn, VerifierCrash(f"isolated call raised {type(exc).__name__}: {exc}"))
        return
    try:
        conn.send(("ok", result))
    except Exception as exc:  # result not picklable; nothing was written yet
        _send_error(conn, exc)


def _send_error(conn: Connection, exc: BaseException) -> None:
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    try:
        conn.send(("err", exc, text))
    except Exception:
        conn.send(("err", RuntimeError(f"{type(exc).__name__}: {exc}"), text))
