"""Work on text a model wrote, done in a separate, fresh interpreter with a deadline per call.

`SandboxProcess` runs ``python -I -m agentic.sandbox`` (isolated mode: no ``PYTHON*`` variables, no
user site, no current directory on the path) in an empty temporary directory. The child's worker is
a function named ``"module:function"``, or what that function returns when called with
``factory_kwargs``; the child serves one call at a time, each a JSON line. Past a call's deadline the child is killed, `SandboxTimeout` is raised, and the next
call starts a fresh child. The parent reads only JSON from the child, never pickle, so even a subverted
child can do no more than return a wrong value.

Inside the child, while a call runs, an audit hook (`sys.addaudithook`) refuses to start processes,
open sockets, load native libraries, write, delete or rename files, and compile source text other than
what the call allows; the child's address space is capped. This is a second wall: callers should
still keep text that could run as code away from the worker (see `agentic.tasks.reasoning_gym`).

Written here because no library fits: `multiprocessing` cannot start a process from a daemonic one
(gymnasium's `AsyncVectorEnv` workers are daemonic) and speaks pickle, and `concurrent.futures` cannot
kill a worker at a deadline before Python 3.14. POSIX only (it waits on pipes with `select`).
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import select
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from typing import Any

DEFAULT_TIMEOUT_S = 5.0
START_TIMEOUT_S = 120.0
DEFAULT_MEMORY_LIMIT_MB = 2048
MAX_REPLY_BYTES = 1 << 20
MAX_ERROR_CHARS = 300

# Audit events refused while a call runs (exact names, or prefixes ending in ".").
_REFUSED_EVENTS = (
    "os.system",
    "os.exec",
    "os.posix_spawn",
    "os.spawn",
    "os.fork",
    "os.forkpty",
    "os.kill",
    "os.killpg",
    "os.remove",
    "os.rmdir",
    "os.rename",
    "os.truncate",
    "os.chmod",
    "os.chown",
    "os.mkdir",
    "os.symlink",
    "os.link",
    "os.putenv",
    "os.unsetenv",
    "subprocess.Popen",
    "pty.spawn",
    "shutil.",
    "socket.",
    "ctypes.",
    "webbrowser.open",
    "code.__new__",
)
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC


class SandboxError(RuntimeError):
    """The sandboxed worker could not start, raised, returned something unreadable or died."""


class SandboxTimeout(SandboxError):
    """A call ran past its deadline; the child was killed."""


class SandboxProcess:
    """A worker (``function``, or ``function(**factory_kwargs)``) in a child interpreter, one call at a time.

    ``call(*args)`` returns the worker's JSON result or raises `SandboxError` / `SandboxTimeout`.
    The child starts on the first call and again after a time-out or a crash; `close` ends it.
    """

    def __init__(
        self,
        function: str,
        factory_kwargs: dict[str, Any] | None = None,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        memory_limit_mb: int = DEFAULT_MEMORY_LIMIT_MB,
    ):
        self.timeout_s = timeout_s
        self._setup = json.dumps(
            {"function": function, "factory_kwargs": factory_kwargs, "memory_limit_mb": memory_limit_mb}
        )
        self._lock = threading.Lock()
        self._child: subprocess.Popen | None = None
        self._workdir: tempfile.TemporaryDirectory | None = None
        self._buffer = b""
        self._finalizer: weakref.finalize | None = None
        self.starts = 0

    def call(self, *args: Any, allow_compile: bool | str = False, timeout_s: float | None = None) -> Any:
        """``worker(*args)`` in the child. ``allow_compile``: True lets the call compile any source
        text (e.g. sympy's parser), a string lets it compile exactly that text, False nothing."""
        request = json.dumps({"args": list(args), "allow_compile": allow_compile}) + "\n"
        with self._lock:
            if self._child is None:
                self._start()
            try:
                reply = self._exchange(request, self.timeout_s if timeout_s is None else timeout_s)
            except SandboxError:
                self.close()
                raise
        if "error" in reply:
            raise SandboxError(str(reply["error"]))
        return reply.get("value")

    def close(self) -> None:
        """Kill the child (if any); the next call starts a new one."""
        if self._finalizer is not None:
            self._finalizer()
        self._child, self._workdir, self._buffer, self._finalizer = None, None, b"", None

    def __getstate__(self) -> dict[str, Any]:
        """Copies (pickles) carry the settings, not the child: a copy starts its own."""
        state = self.__dict__.copy()
        state.update(_lock=None, _child=None, _workdir=None, _buffer=b"", _finalizer=None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def _start(self) -> None:
        self._workdir = tempfile.TemporaryDirectory(prefix="agentic-sandbox-")
        environment = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        self._child = subprocess.Popen(
            [sys.executable, "-I", "-m", "agentic.sandbox"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            cwd=self._workdir.name,
            env=environment,
            start_new_session=True,
        )
        self._finalizer = weakref.finalize(self, _end, self._child, self._workdir)
        self.starts += 1
        try:
            reply = self._exchange(self._setup + "\n", START_TIMEOUT_S)
        except SandboxError:
            self.close()
            raise
        if "error" in reply:
            self.close()
            raise SandboxError(f"the sandboxed worker did not start: {reply['error']}")

    def _exchange(self, request: str, timeout_s: float) -> dict[str, Any]:
        assert self._child is not None and self._child.stdin is not None
        try:
            self._child.stdin.write(request.encode("utf-8"))
            self._child.stdin.flush()
        except OSError as err:
            raise SandboxError(f"the sandboxed worker is gone ({err})") from None
        line = self._read_line(time.monotonic() + timeout_s, timeout_s)
        try:
            reply = json.loads(line)
        except ValueError:
            reply = None
        if not isinstance(reply, dict):
            raise SandboxError("the sandboxed worker replied with something that is not a JSON object")
        return reply

    def _read_line(self, deadline: float, timeout_s: float) -> bytes:
        assert self._child is not None and self._child.stdout is not None
        descriptor = self._child.stdout.fileno()
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise SandboxTimeout(f"no answer within {timeout_s:g}s")
            ready, _, _ = select.select([descriptor], [], [], remaining)
            if not ready:
                continue
            chunk = os.read(descriptor, 65536)
            if not chunk:
                raise SandboxError(f"the sandboxed worker exited (status {self._child.poll()})")
            self._buffer += chunk
            if len(self._buffer) > MAX_REPLY_BYTES:
                raise SandboxError(f"the sandboxed worker's reply is longer than {MAX_REPLY_BYTES} bytes")
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line


def _end(child: subprocess.Popen, workdir: tempfile.TemporaryDirectory) -> None:
    """Kill the child's whole session (it may have started helpers) and remove its directory."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(child.pid, 9)
    child.wait()
    for stream in (child.stdin, child.stdout):
        if stream is not None:
            stream.close()
    workdir.cleanup()


class _Guard:
    """The child's audit hook: refuses the events above while a call runs."""

    def __init__(self) -> None:
        self.armed = False
        self.allow_compile: bool | str = False

    def __call__(self, event: str, args: tuple[Any, ...]) -> None:
        if not self.armed:
            return
        if event == "compile":
            self._check_compile(args[0] if args else None)
        elif event == "open":
            self._check_open(args)
        elif event in _REFUSED_EVENTS or any(p.endswith(".") and event.startswith(p) for p in _REFUSED_EVENTS):
            raise PermissionError(f"refused by the sandbox: {event}")

    def _check_compile(self, source: Any) -> None:
        if not isinstance(source, (str, bytes)) or self.allow_compile is True:
            return
        text = source.decode("utf-8", "replace") if isinstance(source, bytes) else source
        if text != self.allow_compile:
            raise PermissionError("refused by the sandbox: compiling source text")

    @staticmethod
    def _check_open(args: tuple[Any, ...]) -> None:
        mode = args[1] if len(args) > 1 else None
        flags = args[2] if len(args) > 2 else 0
        writes = isinstance(mode, str) and any(c in mode for c in "wax+")
        if writes or (isinstance(flags, int) and flags & _WRITE_FLAGS):
            raise PermissionError("refused by the sandbox: opening a file for writing")


def _limit_memory(megabytes: int) -> None:
    import resource

    limit = megabytes * 1024 * 1024
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def _build(setup: dict[str, Any]) -> Any:
    module_name, _, function_name = setup["function"].partition(":")
    if setup.get("memory_limit_mb"):
        _limit_memory(int(setup["memory_limit_mb"]))
    function = getattr(importlib.import_module(module_name), function_name)
    factory_kwargs = setup.get("factory_kwargs")
    return function if factory_kwargs is None else function(**factory_kwargs)


def _error(err: BaseException) -> dict[str, str]:
    return {"error": f"{type(err).__name__}: {err}"[:MAX_ERROR_CHARS]}


def _serve() -> None:
    """The child's loop: build the worker, then answer one JSON line per JSON line."""
    replies = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)  # anything the worker prints goes to stderr, never into the replies

    def send(reply: dict[str, Any]) -> None:
        try:
            text = json.dumps(reply, allow_nan=False)
        except (TypeError, ValueError) as err:
            text = json.dumps(_error(err))
        replies.write(text + "\n")
        replies.flush()

    try:
        worker = _build(json.loads(sys.stdin.readline()))
    except Exception as err:
        send(_error(err))
        return
    guard = _Guard()
    sys.addaudithook(guard)
    send({"ready": True})
    for line in sys.stdin:
        request = json.loads(line)
        guard.allow_compile, guard.armed = request.get("allow_compile", False), True
        try:
            reply = {"value": worker(*request["args"])}
        except Exception as err:  # the worker's failure is the caller's to report
            reply = _error(err)
        finally:
            guard.armed = False
        send(reply)


if __name__ == "__main__":
    _serve()
