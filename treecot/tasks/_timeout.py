"""A persistent, killable worker process that runs one function under a hard wall-clock timeout.

Verifiers call into libraries (sympy, math-verify) that can hang on hostile input: a power tower such
as ``10^{10^{10}}`` spends minutes in C code where no signal handler ever runs, and a deeply nested
expression can exhaust memory. `TimeoutWorker` runs such a function in a separate Python process and
kills that process when one call exceeds its timeout:

    >>> worker = TimeoutWorker("treecot.tasks.math.symbolic:sympy_equivalent")
    >>> worker.call("\\frac{1}{2}", "0.5", 3, timeout=5.0)
    {'equivalent': True, 'reason': 'equivalent (math-verify)'}
    >>> worker.shutdown()

Design:

* One process is started once and reused for every call (no per-call spawn). It is a fresh interpreter
  (``subprocess`` + ``python -c``), so the caller's ``__main__`` is never re-imported (unlike the
  multiprocessing ``spawn``/``forkserver`` contexts) and no locks or threads are inherited (unlike
  ``fork``).
* Requests and answers are JSON lines over the worker's stdin/stdout: nothing is pickled, and a call's
  arguments and result must be JSON values. The worker's own stdout is redirected to stderr so that
  stray ``print``s of third-party code cannot corrupt the protocol.
* The function runs in the worker's *main thread*, so libraries that use ``signal.alarm`` for their own
  timeouts (math-verify does) work there.
* When a call exceeds its timeout the worker is killed (SIGKILL), reaped and a replacement is started at
  once in the background; `call` raises `CheckTimeout`. Starting the replacement is not part of any
  call's timeout (``startup_timeout`` bounds it separately).
* No leaks: `shutdown()` ends the worker; every worker is also ended at interpreter exit (``atexit``
  through `weakref.finalize`) and when the object is garbage-collected. On Linux the worker asks the
  kernel to kill it when its parent dies (``PR_SET_PDEATHSIG``), so even a SIGKILLed parent leaves no
  orphan behind. The worker's address space is capped (``RLIMIT_AS``) so that runaway allocations fail
  with a `MemoryError` inside the worker instead of swapping the machine.
* Thread-safe (calls are serialised by a lock) and fork-safe (a forked child never talks to its parent's
  worker; it starts its own on first use).
"""

from __future__ import annotations

import importlib
import json
import os
import select
import subprocess
import sys
import threading
import time
import weakref
from pathlib import Path
from typing import Any

__all__ = ["CheckTimeout", "TimeoutWorker", "WorkerError"]

#: Address-space cap of a worker in MiB (sympy + math-verify need ~0.3 GiB of it).
DEFAULT_MEMORY_LIMIT_MB = 4096
#: How long a (re)started worker may take to import its target before `call` gives up.
DEFAULT_STARTUP_TIMEOUT = 120.0

# The directory that contains the `treecot` package; put on the worker's PYTHONPATH so that the worker
# imports the same code as its parent even when treecot is not installed.
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])


class CheckTimeout(TimeoutError):
    """A call did not finish within its timeout; the worker that ran it has been killed."""


class WorkerError(RuntimeError):
    """The worker could not run a call: the target raised, the worker died, or it did not start."""


class _Process:
    """The live worker process and its pipes; shared with the finalizer, so it holds no back-reference."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen | None = None
        self.buffer = b""
        self.ready = False

    def kill(self) -> None:
        proc, self.proc = self.proc, None
        self.buffer, self.ready = b"", False
        if proc is None:
            return
        try:
            proc.kill()
        except OSError:
            pass
        _reap(proc)

    def close(self, grace: float = 1.0) -> None:
        """Ask the worker to exit (EOF on its stdin), then kill it if it is still alive after `grace`."""
        proc, self.proc = self.proc, None
        self.buffer, self.ready = b"", False
        if proc is None:
            return
        for stream in (proc.stdin, proc.stdout):
            try:
                if stream is not None:
                    stream.close()
            except OSError:
                pass
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            try:
                proc.kill()
            except OSError:
                pass
            _reap(proc)


def _reap(proc: subprocess.Popen) -> None:
    for stream in (proc.stdin, proc.stdout):
        try:
            if stream is not None:
                stream.close()
        except OSError:
            pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:  # pragma: no cover - a SIGKILLed process that cannot be reaped
        pass


class TimeoutWorker:
    """Run ``target(*args)`` in a persistent worker process, killing and restarting it on timeout.

    Args:
        target (`str`):
            The function to run, as ``"package.module:function"``. It is imported once, when the
            worker starts; its arguments and return value must be JSON values.
        warmup (`str`, *optional*):
            Optional ``"package.module:function"`` called once (without arguments) when a worker
            starts, before it reports ready: heavy imports and caches belong there, so that they never
            count against a call's timeout (a fresh worker after a timeout would otherwise time out on
            its first call, and so on).
        memory_limit_mb (`int | None`, *optional*, defaults to `DEFAULT_MEMORY_LIMIT_MB`):
            Address-space cap of the worker (``RLIMIT_AS``); ``None`` for no cap.
        startup_timeout (`float`, *optional*, defaults to `DEFAULT_STARTUP_TIMEOUT`):
            Seconds a (re)started worker may take to import `target` and report ready.
        stderr (`int | None`, *optional*, defaults to `subprocess.DEVNULL`):
            Where the worker's stderr goes (``subprocess.DEVNULL`` by default; pass ``None`` to
            inherit the caller's stderr when debugging).
    """

    def __init__(
        self,
        target: str,
        *,
        warmup: str | None = None,
        memory_limit_mb: int | None = DEFAULT_MEMORY_LIMIT_MB,
        startup_timeout: float = DEFAULT_STARTUP_TIMEOUT,
        stderr: int | None = subprocess.DEVNULL,
    ) -> None:
        for spec in (target, warmup):
            if spec is not None and ":" not in spec:
                raise ValueError(f"target must look like 'package.module:function', got {spec!r}")
        self.target = target
        self.warmup = warmup
        self.memory_limit_mb = memory_limit_mb
        self.startup_timeout = float(startup_timeout)
        self._stderr = stderr
        self._lock = threading.Lock()
        self._owner_pid = os.getpid()
        self._next_id = 0
        self.restarts = 0  # how many times a worker was killed and replaced
        self._state = _Process()
        self._finalizer = weakref.finalize(self, _Process.close, self._state, 0.5)

    # ------------------------------------------------------------------ public API

    @property
    def pid(self) -> int | None:
        """Process id of the live worker, or None when none is running."""
        proc = self._state.proc
        return proc.pid if proc is not None and proc.poll() is None else None

    def start(self) -> None:
        """Start the worker now (in the background) instead of on the first `call`."""
        with self._lock:
            self._ensure_owner()
            if self._state.proc is None or self._state.proc.poll() is not None:
                self._spawn()

    def call(self, *args: Any, timeout: float) -> Any:
        """Return ``target(*args)`` computed in the worker.

        Raises:
            CheckTimeout: the call took longer than `timeout` seconds (the worker was killed and a
                replacement started).
            WorkerError: `target` raised (the message names the exception), the worker died, or it
                did not become ready within `startup_timeout`.
        """
        if not timeout or timeout <= 0:
            raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
        with self._lock:
            self._next_id += 1
            request_id = self._next_id
            try:
                line = json.dumps({"id": request_id, "args": list(args)}, ensure_ascii=True).encode() + b"\n"
            except (TypeError, ValueError) as err:
                raise TypeError(f"arguments of {self.target} must be JSON values: {err}") from None
            self._ensure_owner()
            self._ensure_ready()
            state = self._state
            try:
                state.proc.stdin.write(line)
                state.proc.stdin.flush()
            except (OSError, ValueError) as err:
                self._restart()
                raise WorkerError(f"worker for {self.target} died before the call: {err}") from None
            deadline = time.monotonic() + timeout
            try:
                answer = self._read_message(deadline)
            except EOFError:
                code = state.proc.poll() if state.proc is not None else None
                self._restart()
                raise WorkerError(
                    f"worker for {self.target} died during the call (exit code {code})"
                ) from None
            if answer is None:
                self._restart()
                raise CheckTimeout(f"{self.target} timed out after {timeout:g}s")
            if answer.get("id") != request_id:  # cannot happen with one call in flight; never trust it
                self._restart()
                raise WorkerError(
                    f"worker for {self.target} answered request {answer.get('id')}, not {request_id}"
                )
            if not answer.get("ok"):
                raise WorkerError(f"{self.target} raised {answer.get('error', 'an unknown error')}")
            return answer.get("result")

    def shutdown(self, grace: float = 1.0) -> None:
        """Stop the worker (idempotent). A later `call` starts a new one."""
        with self._lock:
            if os.getpid() != self._owner_pid:  # a forked child must not stop its parent's worker
                self._forget()
                return
            self._state.close(grace)

    def __enter__(self) -> TimeoutWorker:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.shutdown()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(target={self.target!r}, pid={self.pid}, restarts={self.restarts})"

    # ------------------------------------------------------------------ internals

    def _forget(self) -> None:
        """After a fork: drop (without touching) the parent's worker and own a fresh state."""
        self._finalizer.detach()
        self._state = _Process()
        self._finalizer = weakref.finalize(self, _Process.close, self._state, 0.5)
        self._owner_pid = os.getpid()

    def _ensure_owner(self) -> None:
        if os.getpid() != self._owner_pid:
            self._forget()

    def _spawn(self) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (_PACKAGE_ROOT, env.get("PYTHONPATH", "")) if p)
        env.setdefault("PYTHONUNBUFFERED", "1")
        argv = [
            sys.executable,
            "-c",
            "from treecot.tasks._timeout import _worker_main; _worker_main()",
            self.target,
            str(self.memory_limit_mb or 0),
            str(os.getpid()),
            self.warmup or "",
        ]
        state = self._state
        state.buffer, state.ready = b"", False
        try:
            state.proc = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self._stderr,
                env=env,
                close_fds=True,
            )
        except OSError as err:
            state.proc = None
            raise WorkerError(f"could not start a worker for {self.target}: {err}") from None

    def _restart(self) -> None:
        self._state.kill()
        self.restarts += 1
        try:
            self._spawn()  # warm up the replacement while the caller carries on
        except WorkerError:
            pass  # the next call tries again and reports why it cannot

    def _ensure_ready(self) -> None:
        state = self._state
        if state.proc is None or state.proc.poll() is not None:
            if state.proc is not None:
                state.kill()
            self._spawn()
        if state.ready:
            return
        try:
            hello = self._read_message(time.monotonic() + self.startup_timeout)
        except EOFError:
            code = state.proc.poll()
            state.kill()
            raise WorkerError(
                f"worker for {self.target} exited while starting (exit code {code}); "
                f"run `python -c 'import {self.target.split(':')[0]}'` to see why"
            ) from None
        if hello is None:
            state.kill()
            raise WorkerError(f"worker for {self.target} did not start within {self.startup_timeout:g}s")
        if not hello.get("ready"):
            state.kill()
            raise WorkerError(f"worker for {self.target} failed to start: {hello.get('error', hello)}")
        state.ready = True

    def _read_message(self, deadline: float) -> dict | None:
        """Next JSON line from the worker, None if `deadline` passes first; EOFError if it died."""
        state = self._state
        fd = state.proc.stdout.fileno()
        poller = select.poll()
        poller.register(fd, select.POLLIN | select.POLLHUP | select.POLLERR)
        while b"\n" not in state.buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            if not poller.poll(max(1, int(remaining * 1000))):
                continue
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                raise EOFError
            state.buffer += chunk
        line, _, state.buffer = state.buffer.partition(b"\n")
        try:
            message = json.loads(line)
        except ValueError:
            raise WorkerError(f"worker for {self.target} wrote a malformed message: {line[:200]!r}") from None
        if not isinstance(message, dict):
            raise WorkerError(f"worker for {self.target} wrote a malformed message: {line[:200]!r}")
        return message


# ---------------------------------------------------------------------- the worker process


def _die_with_parent(parent_pid: int) -> None:
    """Linux: have the kernel SIGKILL this process when its parent dies (best effort elsewhere)."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes
            import signal

            libc = ctypes.CDLL(None, use_errno=True)
            pr_set_pdeathsig = 1
            libc.prctl(pr_set_pdeathsig, int(signal.SIGKILL), 0, 0, 0)
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(0)


def _limit_memory(limit_mb: int) -> None:
    if limit_mb <= 0:
        return
    try:
        import resource

        limit = limit_mb * 1024 * 1024
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        if hard != resource.RLIM_INFINITY:
            limit = min(limit, hard)
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    except (ImportError, ValueError, OSError):
        pass


def _resolve(target: str):
    module_name, _, attr = target.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    if not callable(obj):
        raise TypeError(f"{target} is not callable")
    return obj


def _worker_main(argv: list[str] | None = None) -> None:
    """Entry point of the worker process: ``TARGET MEMORY_LIMIT_MB PARENT_PID [WARMUP]``."""
    import signal

    argv = sys.argv[1:] if argv is None else argv
    target, memory_mb, parent_pid = argv[0], int(argv[1]), int(argv[2])
    warmup = argv[3] if len(argv) > 3 else ""
    # The protocol owns the original stdout; anything else printed goes to stderr.
    out = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's business; it kills us
    _die_with_parent(parent_pid)
    _limit_memory(memory_mb)

    def send(message: dict) -> None:
        try:
            data = json.dumps(message, ensure_ascii=True)
        except (TypeError, ValueError) as err:
            data = json.dumps(
                {"id": message.get("id"), "ok": False, "error": f"TypeError: result is not JSON: {err}"}
            )
        out.write(data.encode() + b"\n")

    try:
        func = _resolve(target)
        if warmup:
            _resolve(warmup)()
    except Exception as err:  # report why, then exit: the parent raises WorkerError
        send({"ready": False, "error": f"{type(err).__name__}: {err}"})
        return
    send({"ready": True, "pid": os.getpid()})

    for raw in sys.stdin.buffer:
        request_id = None
        try:
            request = json.loads(raw)
            request_id = request["id"]
            result = func(*request["args"])
            send({"id": request_id, "ok": True, "result": result})
        except Exception as err:  # includes MemoryError and RecursionError
            send({"id": request_id, "ok": False, "error": f"{type(err).__name__}: {str(err)[:500]}"})
