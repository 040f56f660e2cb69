"""Start the Chainlit web chat, and the sign-in rules it uses.

`run_ui(settings)` runs `python -m chainlit run assistant/apps/ui/app.py --host H --port P [--headless]` as a child
process with:

- cwd and CHAINLIT_APP_ROOT = the project folder holding `chainlit.md`, `.chainlit/config.toml` and `public/`
  (from an installed wheel: their copy inside the package, see `app_root`);
- CHAINLIT_AUTH_SECRET = `settings.ui.auth_secret`, else a random secret generated once and kept in
  `.coursepilot/auth_secret` (mode 600) so signed-in sessions survive restarts;
- CP_UI_SETTINGS_JSON = the exact Settings the caller built (relative paths made absolute, secrets included),
  so the server answers from the same library, index and database as the command that started it.

Sign-in: `settings.ui.users` is 'id:scrypt-hash:role' entries separated by commas (role 'learner' or 'lnd',
default 'learner'); an empty value enables a single demo user 'demo' / 'demo', on a loopback address only:
any other listen address without users is refused unless `settings.ui.allow_demo` (COURSEPILOT_UI_ALLOW_DEMO=1).

Process: the port is checked before the child starts (a taken port is an error with the fix, not a silent exit 0);
SIGTERM / SIGHUP / SIGINT sent to the launcher are forwarded to the Chainlit child, which is waited for (killed
after STOP_TIMEOUT_S), so `kill -TERM` on `coursepilot ui` never leaves a server behind on the port.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from sqlalchemy.engine import make_url

from assistant.core.errors import ConfigError, CoursePilotError
from assistant.core.processes import ProcessSpec, stop_process
from assistant.core.settings import DEMO_ID, DEMO_PASSWORD, SETTINGS_ENV, Settings, settings_from_env
from assistant.planning.passwords import hash_password, verify_password

log = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parents[3]
APP_PATH = Path(__file__).resolve().with_name("app.py")
PACKAGED_ROOT = Path(__file__).resolve().with_name("root")  # filled by setup.py's build step in a wheel
SECRET_FILE = Path(".coursepilot/auth_secret")
ROLES = ("learner", "lnd")
STOP_TIMEOUT_S = 20.0
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}$")


# -- users ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class UserEntry:
    """One account allowed to sign in; `id` is the learner id everywhere in CoursePilot."""

    id: str
    password_hash: str = field(repr=False)
    role: str = "learner"


def parse_users(spec: str) -> dict[str, UserEntry]:
    """Parse 'id:scrypt-hash:role,...'. Empty: the demo user. Raises ConfigError naming the bad entry."""
    if not spec.strip():
        return {DEMO_ID: UserEntry(DEMO_ID, _demo_hash(), "learner")}
    users: dict[str, UserEntry] = {}
    for number, raw in enumerate(spec.split(","), start=1):
        entry = raw.strip()
        if not entry:
            continue
        parts = entry.split(":")
        if len(parts) not in (2, 3):
            raise ConfigError(
                f"COURSEPILOT_UI_USERS entry {number} is not 'id:scrypt-hash:role'.",
                "make a hash with `coursepilot hash-password` and write id:hash:learner.",
            )
        user_id, password_hash = parts[0].strip(), parts[1].strip()
        role = parts[2].strip().lower() if len(parts) == 3 and parts[2].strip() else "learner"
        if not _ID_RE.match(user_id):
            raise ConfigError(
                f"COURSEPILOT_UI_USERS entry {number}: '{user_id}' is not a valid user id.",
                "use letters, digits and . _ @ + - (up to 128 characters).",
            )
        if not password_hash.startswith("scrypt$") or password_hash.count("$") != 2:
            raise ConfigError(
                f"COURSEPILOT_UI_USERS entry {number} ('{user_id}'): the password is not an scrypt hash.",
                "store hashes, never passwords: make one with `coursepilot hash-password`.",
            )
        if role not in ROLES:
            raise ConfigError(
                f"COURSEPILOT_UI_USERS entry {number} ('{user_id}'): unknown role '{role}'.",
                f"use one of: {', '.join(ROLES)}.",
            )
        if user_id in users:
            raise ConfigError(f"COURSEPILOT_UI_USERS lists '{user_id}' twice.", "keep one entry per user.")
        users[user_id] = UserEntry(user_id, password_hash, role)
    if not users:
        raise ConfigError(
            "COURSEPILOT_UI_USERS has no users.", "leave it empty for the demo user, or add id:hash:role."
        )
    return users


@cache
def _demo_hash() -> str:
    return hash_password(DEMO_PASSWORD)


@cache
def _dummy_hash() -> str:
    return hash_password(secrets.token_hex(8))


def authenticate(users: dict[str, UserEntry], username: str, password: str) -> UserEntry | None:
    """The matching user, or None. Unknown names cost one scrypt too, so timing does not reveal who exists."""
    user = users.get((username or "").strip())
    if user is None:
        verify_password(password or "", _dummy_hash())
        return None
    return user if verify_password(password or "", user.password_hash) else None


# -- settings for the server process -----------------------------------------------------------------------
def _plain(value: Any) -> Any:
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, Path):
        return str(value.expanduser().resolve())
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def absolute_database_url(url: str) -> str:
    """A SQLite URL with a relative file path made absolute (the server runs in another folder)."""
    if not url.startswith("sqlite"):
        return url
    parsed = make_url(url)
    database = parsed.database
    if not database or database == ":memory:" or Path(database).is_absolute():
        return url
    if database.startswith("file:"):  # an SQLite URI filename (e.g. file:/srv/cp.db?mode=ro&uri=true)
        path = database.removeprefix("file:")
        if path.startswith("/"):
            return url
        return parsed.set(database=f"file:{Path(path).resolve()}").render_as_string(hide_password=False)
    return parsed.set(database=str(Path(database).resolve())).render_as_string(hide_password=False)


def settings_to_json(settings: Settings) -> str:
    """The settings, secrets revealed and paths absolute, for the server's environment only."""
    data = {name: _plain(dict(getattr(settings, name))) for name in type(settings).model_fields}
    data["database"]["url"] = absolute_database_url(settings.database.url)
    return json.dumps(data)


def auth_secret(settings: Settings, secret_file: Path = SECRET_FILE) -> str:
    """The session-signing secret: configured, else generated once and kept (mode 600) in `secret_file`."""
    if settings.ui.auth_secret is not None and settings.ui.auth_secret.get_secret_value():
        return settings.ui.auth_secret.get_secret_value()
    if secret_file.is_file():
        stored = secret_file.read_text().strip()
        if stored:
            return stored
    secret_file.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(48)
    fd = os.open(secret_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")
    return value


def app_root() -> Path:
    """The folder with chainlit.md, .chainlit/config.toml and public/ that Chainlit serves.

    In a checkout: the project folder. From an installed wheel: the copy setup.py put in the package
    (assistant/apps/ui/root), or, where the package folder is read-only, a copy of it in the user's cache
    (Chainlit writes translations and uploads under its app root).
    """
    if (PROJECT_ROOT / ".chainlit" / "config.toml").is_file():
        return PROJECT_ROOT
    if not (PACKAGED_ROOT / ".chainlit" / "config.toml").is_file():
        raise ConfigError(
            f"The chat UI's files are missing from {PACKAGED_ROOT}.",
            "reinstall CoursePilot from its wheel (`pip install coursepilot`), or run it from a checkout.",
        )
    if os.access(PACKAGED_ROOT, os.W_OK) and os.access(PACKAGED_ROOT / ".chainlit", os.W_OK):
        return PACKAGED_ROOT
    import shutil

    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    copy = base / "coursepilot" / "ui-root"
    shutil.copytree(PACKAGED_ROOT, copy, dirs_exist_ok=True)
    return copy


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 and 'localhost' (names are not resolved: anything else counts as reachable)."""
    if host.strip().lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def demo_allowed(settings: Settings, host: str) -> bool:
    """The shared demo user signs in on loopback only, unless explicitly allowed."""
    return is_loopback(host) or settings.ui.allow_demo


def check_demo(settings: Settings, host: str) -> None:
    """Refuse to serve the shared demo user on a non-loopback address, saying how to add a real user."""
    if settings.ui.users.strip() or demo_allowed(settings, host):
        return
    raise ConfigError(
        f"COURSEPILOT_UI_USERS is empty, so the only user would be the shared demo user 'demo' / 'demo', and "
        f"{host} is not a loopback address: anyone who can reach it would sign in as the same learner.",
        "add a user: run `coursepilot hash-password NAME` and put the printed entry in COURSEPILOT_UI_USERS "
        "(comma-separated for several); or listen on 127.0.0.1; or, for a throwaway demo, set "
        "COURSEPILOT_UI_ALLOW_DEMO=1.",
    )


def check_port(host: str, port: int) -> None:
    """ConfigError when the port cannot be bound on `host` (another server has it, or no permission)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise ConfigError(
            f"Cannot listen on {host}:{port}: {exc.strerror or exc}.", "check --host / COURSEPILOT_UI_HOST."
        ) from exc
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # what uvicorn sets too
        try:
            sock.bind(address)
        except OSError as exc:
            raise ConfigError(
                f"Cannot listen on {host}:{port}: {exc.strerror or exc}.",
                f"stop the server already using port {port} (`ss -ltnp 'sport = :{port}'` shows it), or choose "
                "another one with --port / COURSEPILOT_UI_PORT.",
            ) from exc


UIProcess = ProcessSpec


def ui_process(
    settings: Settings,
    host: str | None = None,
    port: int | None = None,
    headless: bool = True,
    secret_file: Path = SECRET_FILE,
) -> UIProcess:
    """The command, environment and folder `run_ui` uses (tests start it themselves with Popen)."""
    parse_users(settings.ui.users)  # fail here, with the fix, rather than at the first sign-in
    check_demo(settings, host or settings.ui.host)
    root = app_root()
    argv = [
        sys.executable,
        "-m",
        "chainlit",
        "run",
        str(APP_PATH),
        "--host",
        host or settings.ui.host,
        "--port",
        str(port or settings.ui.port),
    ]
    if headless:
        argv.append("--headless")
    env = dict(os.environ)
    env.update(
        {
            "CHAINLIT_AUTH_SECRET": auth_secret(settings, secret_file),
            "CHAINLIT_APP_ROOT": str(root),
            SETTINGS_ENV: settings_to_json(settings),
            "PYTHONPATH": os.pathsep.join(p for p in (str(PROJECT_ROOT), env.get("PYTHONPATH", "")) if p),
        }
    )
    return UIProcess(argv=argv, env=env, cwd=root)


def run_ui(settings: Settings, host: str | None = None, port: int | None = None, headless: bool = True) -> int:
    """Run the chat server until it stops; returns its exit code (non-zero when it stopped on its own).

    Signals sent to this process are forwarded to the server, which is then waited for.
    """
    spec = ui_process(settings, host, port, headless)
    check_port(host or settings.ui.host, port or settings.ui.port)
    if not settings.ui.users.strip():
        log.warning("COURSEPILOT_UI_USERS is empty: the demo user 'demo' / 'demo' can sign in.")
    proc = subprocess.Popen(spec.argv, env=spec.env, cwd=spec.cwd)
    stopping: list[float] = []

    def forward(signum: int, _frame: object) -> None:
        if not stopping:
            stopping.append(time.monotonic())
        if proc.poll() is None:  # SIGTERM even for Ctrl+C: uvicorn force-exits on a second SIGINT
            proc.send_signal(signal.SIGTERM)

    handled = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)
    previous = {signum: signal.signal(signum, forward) for signum in handled}
    try:
        while True:
            try:
                code = proc.wait(timeout=0.5)
                break
            except subprocess.TimeoutExpired:
                if stopping and time.monotonic() - stopping[0] > STOP_TIMEOUT_S:
                    log.warning("the chat server did not stop within %.0f s: killing it", STOP_TIMEOUT_S)
                    proc.kill()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if proc.poll() is None:
            stop_process(proc, timeout=STOP_TIMEOUT_S)
    if stopping:
        return 0  # stopped on request
    if code == 0:  # Chainlit exits 0 even when uvicorn could not start (e.g. the port was taken meanwhile)
        raise CoursePilotError(
            "The chat server stopped on its own.", "see its log above (a port taken by another server?)."
        )
    return code


__all__ = [
    "UIProcess",
    "UserEntry",
    "app_root",
    "auth_secret",
    "authenticate",
    "check_demo",
    "check_port",
    "demo_allowed",
    "is_loopback",
    "parse_users",
    "run_ui",
    "settings_from_env",
    "settings_to_json",
    "stop_process",
    "ui_process",
]
