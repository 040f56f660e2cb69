"""Child processes and ports: how to start one (a typed spec), how to stop one, a free loopback port, a Chroma
server for the benchmark and the tests."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class ProcessSpec:
    """How to start a server process: command line, environment and working folder."""

    argv: list[str]
    env: dict[str, str]
    cwd: Path


def stop_process(proc: subprocess.Popen[Any], timeout: float) -> int:
    """Ask a child process to stop, kill it if it has not within `timeout` seconds; returns its exit code."""
    proc.terminate()
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


_PORTS_HANDED_OUT: set[int] = set()


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on `host` now and was not handed out before by this process.

    The kernel may offer a just-closed port again; two servers started back to back on one port would pass
    each other's health check, so a caller could talk to the wrong one.
    """
    while True:
        with socket.socket() as sock:
            sock.bind((host, 0))
            port = int(sock.getsockname()[1])
        if port not in _PORTS_HANDED_OUT:
            _PORTS_HANDED_OUT.add(port)
            return port


def chroma_command() -> str | None:
    """The `chroma` command of the chromadb package (on PATH or beside this Python), or None."""
    chroma = shutil.which("chroma") or str(Path(sys.executable).parent / "chroma")
    return chroma if Path(chroma).exists() else None


@contextlib.contextmanager
def chroma_server(data_dir: Path, timeout: float = 90.0) -> Iterator[tuple[str, int, int]]:
    """`chroma run` over `data_dir` on a free loopback port until the block ends; yields (host, port, pid).

    The server's log goes to `chroma-server-<port>.log` beside `data_dir`.
    """
    chroma = chroma_command()
    if chroma is None:
        raise RuntimeError("the `chroma` command (from the chromadb package) is not installed")
    port = free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir.parent / f"chroma-server-{port}.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [chroma, "run", "--path", str(data_dir), "--host", "127.0.0.1", "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.time() + timeout
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                if proc.poll() is not None:
                    raise RuntimeError(f"chroma server exited: {log_path.read_text()[-2000:]}") from None
                if time.time() > deadline:
                    raise RuntimeError(f"chroma server did not start within {timeout:.0f} s") from None
                time.sleep(0.3)
        yield "127.0.0.1", port, proc.pid
    finally:
        stop_process(proc, timeout=15)
