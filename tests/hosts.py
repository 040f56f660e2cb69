"""Test "hosts": network namespaces joined by a bridge (made here, removed afterwards), or loopback dirs.

Each host gets its own address and working folder; processes started on it share nothing with the others but
the network. Services that listen on loopback only (the PostgreSQL server here) are reached through a TCP
forwarder on the bridge address, so the server's configuration is left alone.
"""

from __future__ import annotations

import contextlib
import os
import random
import secrets
import signal
import socket
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def stop_group(proc: subprocess.Popen[Any], timeout: float = 20) -> None:
    """Stop a process started with start_new_session=True, and every child it started."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    with contextlib.suppress(ProcessLookupError):  # children that outlived their parent
        os.killpg(proc.pid, signal.SIGKILL)


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


def namespaces_unavailable() -> str | None:
    """Why network namespaces cannot be made here, or None when they can."""
    if os.geteuid() != 0:
        return "network namespaces need root (ip netns add); this run is not root"
    probe = f"cpprobe{secrets.token_hex(3)}"
    try:
        _ip("netns", "add", probe)
    except (OSError, subprocess.CalledProcessError) as exc:
        return f"`ip netns add` is not allowed here: {getattr(exc, 'stderr', '') or exc}".strip()
    _ip("netns", "del", probe)
    return None


@dataclass
class Host:
    name: str
    address: str
    folder: Path
    namespace: str | None = None

    def argv(self, command: list[str]) -> list[str]:
        """The command run on this host (`ip netns exec` execs it, so the pid is the command's own)."""
        return ["ip", "netns", "exec", self.namespace, *command] if self.namespace else command


@dataclass
class Network:
    """Hosts on one bridge (namespaces) or on loopback; `gateway` is where the shared services are reached."""

    gateway: str
    hosts: dict[str, Host] = field(default_factory=dict)
    isolated: bool = False


@contextlib.contextmanager
def network(names: list[str], root: Path, isolated: bool) -> Iterator[Network]:
    """Hosts named `names`, each with its own folder under `root`; namespaces when `isolated`."""
    if not isolated:
        net = Network(gateway="127.0.0.1")
        for name in names:
            (root / name).mkdir(parents=True, exist_ok=True)
            net.hosts[name] = Host(name, "127.0.0.1", root / name)
        yield net
        return
    tag = secrets.token_hex(2)
    subnet = f"10.217.{random.randint(1, 250)}"
    bridge = f"cpbr{tag}"
    made: list[tuple[str, str]] = []
    try:
        _ip("link", "add", bridge, "type", "bridge")
        made.append(("link", bridge))
        _ip("addr", "add", f"{subnet}.1/24", "dev", bridge)
        _ip("link", "set", bridge, "up")
        net = Network(gateway=f"{subnet}.1", isolated=True)
        for number, name in enumerate(names, start=11):
            ns, veth = f"cp{tag}{name}"[:15], f"cpv{tag}{number}"
            _ip("netns", "add", ns)
            made.append(("netns", ns))
            _ip("link", "add", veth, "type", "veth", "peer", "name", f"{veth}p")
            made.append(("link", veth))
            _ip("link", "set", f"{veth}p", "netns", ns)
            _ip("link", "set", veth, "master", bridge)
            _ip("link", "set", veth, "up")
            _ip("netns", "exec", ns, "ip", "addr", "add", f"{subnet}.{number}/24", "dev", f"{veth}p")
            _ip("netns", "exec", ns, "ip", "link", "set", f"{veth}p", "up")
            _ip("netns", "exec", ns, "ip", "link", "set", "lo", "up")
            (root / name).mkdir(parents=True, exist_ok=True)
            net.hosts[name] = Host(name, f"{subnet}.{number}", root / name, ns)
        yield net
    finally:
        for kind, name in reversed(made):
            with contextlib.suppress(subprocess.CalledProcessError):
                _ip(kind, "del", name)


@contextlib.contextmanager
def forwarder(listen: str, target: tuple[str, int]) -> Iterator[int]:
    """A TCP forwarder from `listen`:<port> to `target`, in a thread; yields the port.

    When either side closes, both are closed, so a killed client ends its server session (PostgreSQL then
    releases the session's advisory locks, as it would for a direct connection).
    """
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind((listen, 0))
    server.listen(64)
    server.settimeout(0.5)
    stop = threading.Event()
    open_sockets: set[socket.socket] = set()

    def pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()

    def accept() -> None:
        while not stop.is_set():
            try:
                client, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection(target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            client.settimeout(None)
            open_sockets.update((client, upstream))
            threading.Thread(target=pipe, args=(client, upstream), daemon=True).start()
            threading.Thread(target=pipe, args=(upstream, client), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield int(server.getsockname()[1])
    finally:
        stop.set()
        thread.join(5)
        server.close()
        for sock in open_sockets:
            with contextlib.suppress(OSError):
                sock.close()
