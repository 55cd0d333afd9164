"""The scoring sandbox from the outside: a child interpreter, a deadline per call, a guard on what a call may do."""

import os
import time

import pytest

from agentic.sandbox import SandboxError, SandboxProcess, SandboxTimeout


def test_the_worker_runs_in_another_process_and_survives_its_own_errors():
    sandbox = SandboxProcess("os:getpid")
    child = sandbox.call()
    assert child != os.getpid()
    with pytest.raises(SandboxError, match="TypeError"):
        sandbox.call("not an argument getpid takes")
    assert sandbox.call() == child and sandbox.starts == 1
    sandbox.close()


def test_a_call_past_its_deadline_is_cut_and_the_next_call_gets_a_fresh_child():
    sandbox = SandboxProcess("time:sleep", timeout_s=0.5)
    sandbox.call(0)
    start = time.monotonic()
    with pytest.raises(SandboxTimeout):
        sandbox.call(30)
    assert time.monotonic() - start < 2.0
    assert sandbox.call(0) is None and sandbox.starts == 2
    sandbox.close()


def test_a_child_that_dies_is_reported_and_replaced():
    sandbox = SandboxProcess("os:_exit")
    with pytest.raises(SandboxError, match="exited"):
        sandbox.call(3)
    with pytest.raises(SandboxError, match="exited"):
        sandbox.call(4)
    assert sandbox.starts == 2


def test_source_text_is_compiled_only_when_the_call_allows_exactly_it():
    sandbox = SandboxProcess("builtins:eval")
    with pytest.raises(SandboxError, match="refused by the sandbox: compiling"):
        sandbox.call("6 * 7")
    with pytest.raises(SandboxError, match="refused by the sandbox: compiling"):
        sandbox.call("6 * 7", allow_compile="6 * 8")
    assert sandbox.call("6 * 7", allow_compile="6 * 7") == 42
    sandbox.close()


@pytest.mark.parametrize(
    "code",
    [
        "import os; os.system('touch {path}')",
        "import subprocess; subprocess.run(['touch', '{path}'])",
        "open('{path}', 'w').write('x')",
        "import os; os.close(os.open('{path}', os.O_CREAT | os.O_WRONLY))",
        "import socket; socket.create_connection(('127.0.0.1', 9))",
        "import ctypes; ctypes.CDLL(None)",
    ],
    ids=["os.system", "subprocess", "open-w", "os.open", "socket", "ctypes"],
)
def test_code_that_does_run_cannot_start_processes_write_files_or_reach_the_network(tmp_path, code):
    target = tmp_path / "pwned"
    sandbox = SandboxProcess("builtins:exec")
    with pytest.raises(SandboxError, match="refused by the sandbox"):
        sandbox.call(code.format(path=target), allow_compile=True)
    assert not target.exists()
    sandbox.close()


def test_a_copy_starts_its_own_child():
    import copy

    sandbox = SandboxProcess("os:getpid")
    first = sandbox.call()
    twin = copy.deepcopy(sandbox)
    assert twin.call() not in (first, os.getpid())
    sandbox.close()
    twin.close()
