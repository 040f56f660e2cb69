"""Child processes and ports: how to start one (a typed spec), how to stop one, a free loopback port."""

from __future__ import annotations

import socket
import subprocess
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


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on `host` right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])
