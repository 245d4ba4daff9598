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
  (``multiprocessing.Pool`` and DataLoader workers), where this must work too.
- The limit is wall-clock for the whole call: ``run_isolated`` returns or raises within ``timeout``
  plus the few milliseconds a kill takes. A child that is still starting when the limit is reached
  (the first call of a thread, under load) is not killed: the call raises ``VerifierTimeout`` and the
  next call finds the child ready, so a slow start never turns into an endless series of timeouts.
- Each thread also keeps a standby interpreter, started while its first call runs and already holding
  the function's module: on overrun the child is killed (SIGKILL) and the standby takes over at once,
  so the next call does not wait for an interpreter to start either (measured: that start, 0.05 s idle
  and up to ~1.5 s on the shared 2-core machine, was most of the overrun before the standby existed).

POSIX only (Linux, macOS): the child talks over an inherited socket.
"""

from __future__ import annotations

import contextlib
import gc
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
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

__all__ = [
    "STARTUP_TIMEOUT",
    "IsolatedChild",
    "VerifierCrash",
    "VerifierTimeout",
    "in_worker",
    "prestart",
    "run_isolated",
    "shutdown",
]

logger = logging.getLogger(__name__)

#: Seconds a fresh child may take to start and import what it needs before it is presumed broken.
STARTUP_TIMEOUT = 60.0

_IN_WORKER = False
_CHILD_CONN: Connection | None = None
_local = threading.local()
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[3])  # the folder that holds r1zero/
_BOOTSTRAP = (
    "import sys; sys.path.insert(0, {root!r}); "
    "from r1zero.verifiers.support.sandbox import _child_main; _child_main(int(sys.argv[1]))"
)


class VerifierTimeout(TimeoutError):
    """The isolated call ran past its wall-clock limit (its child process was killed, unless it was
    still starting)."""


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


@dataclass
class _Process:
    """One child interpreter and the socket to it."""

    popen: subprocess.Popen
    conn: Connection
    finalizer: weakref.finalize
    launched_at: float
    ready: bool = False

    @property
    def alive(self) -> bool:
        return self.popen.poll() is None


class IsolatedChild:
    """A persistent child interpreter that runs pickled calls one at a time, with an optional standby.

    With ``standby=True`` a second interpreter is kept started (and warmed) beside the active one, so
    that after a kill the replacement is ready at once: the next call does not wait for an interpreter
    to start under load. Used by ``run_isolated`` (one per thread) and by ``r1zero.verifiers.pool``
    (one per worker). Not thread-safe: each instance belongs to one thread at a time.
    """

    def __init__(self, standby: bool = False) -> None:
        self.use_standby = standby
        self.warm: bytes | None = None  # pickled object whose unpickling imports what calls will need
        self.starts = 0
        self._owner_pid = os.getpid()
        self._active: _Process | None = None
        self._standby: _Process | None = None

    @property
    def alive(self) -> bool:
        return self._active is not None and self._active.alive

    @property
    def pid(self) -> int | None:
        return None if self._active is None else self._active.popen.pid

    @property
    def standby_pid(self) -> int | None:
        return None if self._standby is None else self._standby.popen.pid

    @property
    def connection(self) -> Connection | None:
        return None if self._active is None else self._active.conn

    def start(self) -> None:
        """Make sure an active child runs: the standby if one is ready, else a fresh one."""
        if os.getpid() != self._owner_pid:  # inherited through fork: those children belong to our parent
            self._active = self._standby = None
            self._owner_pid = os.getpid()
        if self.alive and not self._stuck(self._active):
            return
        self.kill()
        standby, self._standby = self._standby, None
        usable = standby is not None and standby.alive and not self._stuck(standby)
        self._active = standby if usable else self._launch()
        if standby is not None and standby is not self._active:
            standby.finalizer()

    @staticmethod
    def _stuck(process: _Process | None) -> bool:
        return (
            process is not None
            and not process.ready
            and time.monotonic() - process.launched_at > STARTUP_TIMEOUT
        )

    def wait_ready(self, deadline: float) -> bool:
        """Whether the active child has started (imported what it needs) by ``deadline``."""
        self.start()
        active = self._active
        assert active is not None
        if not active.ready:
            message = self.receive(deadline)
            if message is None:
                return False
            if message[0] != "ready":
                self.kill()
                raise VerifierCrash(f"isolated child sent {message[0]!r} before 'ready'")
            active.ready = True
        return True

    def mark_ready(self) -> None:
        """Record that the active child said "ready" (for callers that read its connection directly)."""
        if self._active is not None:
            self._active.ready = True

    def prepare_standby(self) -> None:
        """Start the standby interpreter in the background, if enabled and not running."""
        running = self._standby is not None and self._standby.alive
        if self.use_standby and not running and os.getpid() == self._owner_pid:
            self._standby = self._launch()

    def _launch(self) -> _Process:
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
        self.starts += 1
        conn.send((list(sys.path), self.warm))  # the child answers ("ready", None) once set up
        return _Process(
            popen, conn, weakref.finalize(self, _kill, popen, conn, os.getpid()), time.monotonic()
        )

    def send_call(self, payload: bytes) -> None:
        """Send a pickled ``(fn, args, kwargs)``; the child answers ``started``, then ``ok``/``err``."""
        self.start()
        assert self._active is not None
        try:
            self._active.conn.send(("call", payload))
        except OSError as exc:  # died between start and send
            self.kill()
            raise VerifierCrash(f"isolated child died before the call: {exc}") from exc

    def receive(self, deadline: float) -> tuple | None:
        """The child's next message, or None at ``deadline`` (``time.monotonic()``); VerifierCrash on death."""
        assert self._active is not None
        try:
            if not self._active.conn.poll(max(0.0, deadline - time.monotonic())):
                return None
            return self._active.conn.recv()
        except (EOFError, OSError) as exc:
            code = self._active.popen.wait(timeout=5)
            self.kill()
            raise VerifierCrash(f"isolated child died (exit code {code})") from exc

    def kill(self) -> None:
        """Kill the active child at once (SIGKILL) and reap it; the standby is kept."""
        if self._active is not None:
            self._active.finalizer()
            self._active = None

    def close(self) -> None:
        """Kill the active child and the standby."""
        self.kill()
        if self._standby is not None:
            self._standby.finalizer()
            self._standby = None


def _kill(popen: subprocess.Popen, conn: Connection, owner_pid: int) -> None:
    conn.close()
    if os.getpid() != owner_pid:  # a forked copy of the owner must not kill the owner's children
        return
    if popen.poll() is None:
        popen.kill()
    try:
        popen.wait(timeout=5)
    except subprocess.TimeoutExpired:  # pragma: no cover - SIGKILL does not fail on POSIX
        logger.warning("isolated child %d did not exit after SIGKILL", popen.pid)


def _thread_child() -> IsolatedChild:
    child = getattr(_local, "child", None)
    if child is None:
        child = _local.child = IsolatedChild(standby=True)
    return child


def prestart(fn: Callable[..., Any] | None = None) -> None:
    """Start this thread's child now, importing ``fn``'s module, without waiting for it.

    The first ``run_isolated`` call of a thread otherwise spends part of its limit on that start
    (~0.1 s, ~0.5 s when the module imports sympy; more on a loaded machine).
    """
    child = _thread_child()
    if fn is not None:
        child.warm = pickle.dumps(fn)
    child.start()


def shutdown() -> None:
    """Kill the calling thread's child now (it is also killed when the thread or process ends)."""
    child = getattr(_local, "child", None)
    if child is not None:
        child.close()
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
    deadline = time.monotonic() + timeout
    payload = pickle.dumps((fn, args, kwargs))
    child = _thread_child()
    child.warm = pickle.dumps(fn)  # a standby imports fn's module before it is needed
    try:
        if not child.wait_ready(deadline):  # left running: the next call finds it ready
            raise VerifierTimeout(f"the isolated child was still starting after {timeout:g} s (not killed)")
        child.send_call(payload)
        message = child.receive(deadline)
        if message is not None and message[0] == "started":
            child.prepare_standby()  # while fn runs, so that its start costs this call no wall time
            message = child.receive(deadline)
        if message is None:
            child.kill()
            child.start()  # the standby takes over now, so the next call does not wait for a start
            raise VerifierTimeout(f"{_name(fn)} ran past its {timeout:g} s limit; its process was killed")
    except VerifierTimeout:
        raise
    except VerifierCrash:
        child.start()
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


def freeze_imports() -> None:
    """Move every object alive now (imported modules: sympy, ANTLR tables) out of the garbage
    collector's view, in a child after its imports: a full collection then skips them (~30 ms each time
    it runs, every few hundred items, in a ``math`` worker; ``gc.freeze``, as CPython's docs advise
    for long-lived processes).
    """
    gc.collect()
    gc.freeze()


#: Address space a child may grow by past what its imports took (sympy asked for 10^(10^10) digits
#: raises MemoryError in the child, which the verifier reports as an error, instead of swapping the host).
MEMORY_HEADROOM_BYTES = 3 << 30
#: CPU seconds one call may use: a backstop to the caller's wall-clock limit (SIGXCPU ends the child,
#: which the caller replaces, as after a timeout).
CPU_SECONDS_PER_CALL = 60


def limit_memory(headroom: int = MEMORY_HEADROOM_BYTES) -> int | None:
    """Cap this process's address space (``RLIMIT_AS``) at its current size plus ``headroom``; returns
    the cap, or None where the platform has no such limit."""
    try:
        import resource

        with open("/proc/self/statm") as statm:
            size = int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        cap = size + headroom
        hard = resource.getrlimit(resource.RLIMIT_AS)[1]
        if hard != resource.RLIM_INFINITY:
            cap = min(cap, hard)
        resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
        return cap
    except (ImportError, OSError, ValueError):
        return None


def limit_cpu(seconds: int = CPU_SECONDS_PER_CALL) -> int | None:
    """Allow this process ``seconds`` more CPU time from now (soft ``RLIMIT_CPU``; called before each
    call, so a long-lived child is not ended by the sum of many short calls); returns the new soft limit."""
    try:
        import resource

        usage = resource.getrusage(resource.RUSAGE_SELF)
        soft = int(usage.ru_utime + usage.ru_stime) + seconds + 1
        hard = resource.getrlimit(resource.RLIMIT_CPU)[1]
        if hard != resource.RLIM_INFINITY:
            soft = min(soft, hard)
        resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))
        return soft
    except (ImportError, OSError, ValueError):
        return None


def _child_main(fd: int) -> None:
    """Loop of the child interpreter: receive calls, run them, send results, until the parent closes."""
    global _IN_WORKER, _CHILD_CONN
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    conn = _CHILD_CONN = Connection(fd)
    _IN_WORKER = True
    try:
        sys_path, warm = conn.recv()
        sys.path[:] = sys_path
        if warm is not None:
            with contextlib.suppress(Exception):  # a failure is reported when a call needs the module
                pickle.loads(warm)
        freeze_imports()
        limit_memory()
        conn.send(("ready", None))
        while True:
            kind, payload = conn.recv()
            limit_cpu()
            _handle(conn, kind, payload)
    except (EOFError, OSError, KeyboardInterrupt):
        return


def _handle(conn: Connection, kind: str, payload: bytes) -> None:
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
