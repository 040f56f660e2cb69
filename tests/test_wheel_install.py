"""The wheel works outside the checkout: built, installed into an empty venv, `coursepilot ui` serves the full UI.

Offline-friendly: the venv is filled from uv's cache and the local wheel folder, pinned to the versions of the
venv running the tests (a registry is asked only for what the cache lacks).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import ROOT, free_port

pytestmark = pytest.mark.slow

COURSE = "# Basics\n\n## Start\n\nPress Enter to confirm a value after typing it into a cell of the sheet.\n"


def _uv() -> str:
    uv = shutil.which("uv") or str(Path(sys.executable).parent / "uv")
    assert Path(uv).exists(), "uv is installed by scripts/install.sh; run it first"
    return uv


def _run(argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=900, **kwargs)  # type: ignore[call-overload]
    assert done.returncode == 0, f"{' '.join(argv[:4])}... failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
    return done


def _install(uv: str, python: Path, wheel: Path, constraints: Path) -> None:
    argv = [uv, "pip", "install", "-q", "--python", str(python), "--constraint", str(constraints), str(wheel)]
    links = os.environ.get("PIP_FIND_LINKS", "/opt/wheels")
    if Path(links).is_dir():
        argv[3:3] = ["--find-links", links]
    offline = subprocess.run([*argv, "--offline"], capture_output=True, text=True, timeout=900)
    if offline.returncode != 0:  # something is not in uv's cache yet: let uv fetch it from the registry
        _run(argv)


def _get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.status, response.read()


def test_wheel_in_an_empty_venv_serves_the_chat_ui(tmp_path: Path) -> None:
    uv = _uv()
    dist = tmp_path / "dist"
    _run([uv, "build", "--wheel", "--out-dir", str(dist), str(ROOT)])
    wheel = next(dist.glob("coursepilot-*.whl"))

    venv = tmp_path / "venv"
    _run([uv, "venv", "-q", "--python", sys.executable, str(venv)])
    python = venv / "bin" / "python"
    frozen = _run([uv, "pip", "freeze", "--python", sys.executable]).stdout.splitlines()
    constraints = tmp_path / "constraints.txt"
    constraints.write_text("\n".join(line for line in frozen if "==" in line and not line.startswith("coursepilot")))
    _install(uv, python, wheel, constraints)

    work = tmp_path / "elsewhere"  # not the checkout: nothing may come from it
    (work / "library" / "sheets").mkdir(parents=True)
    (work / "library" / "sheets" / "basics.md").write_text(COURSE)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COURSEPILOT_", "CHAINLIT_", "PYTHON"))}
    env.update({"COURSEPILOT_LIBRARY_DIR": "library", "HF_HUB_OFFLINE": "1"})
    cli = str(venv / "bin" / "coursepilot")
    imported = _run([str(python), "-c", "import assistant; print(assistant.__file__)"], cwd=work, env=env).stdout
    assert str(venv) in imported and str(ROOT) not in imported
    _run([cli, "ingest", "library", "--json"], cwd=work, env=env)
    # Without the bench extra the benchmark says what to install instead of failing on an import.
    bench = subprocess.run([cli, "bench", "--quick", "--json"], cwd=work, env=env, capture_output=True, text=True)
    assert bench.returncode == 2 and "coursepilot[bench]" in bench.stdout, bench.stdout + bench.stderr

    port = free_port()
    log_path = tmp_path / "ui.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [cli, "ui", "--port", str(port)],
            cwd=work,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                if _get(f"{base}/health")[0] == 200:
                    break
            except OSError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, log_path.read_text()[-3000:]
            time.sleep(0.5)
        public = ROOT / "public"
        assert _get(f"{base}/public/coursepilot.css") == (200, (public / "coursepilot.css").read_bytes())
        assert _get(f"{base}/public/coursepilot.js") == (200, (public / "coursepilot.js").read_bytes())
        assert _get(f"{base}/logo?theme=light") == (200, (public / "logo_light.svg").read_bytes())
        assert _get(f"{base}/favicon") == (200, (public / "favicon.svg").read_bytes())
    finally:
        _stop_group(proc)


def _stop_group(proc: subprocess.Popen[bytes]) -> None:
    """Ctrl+C to the launcher's process group (it stops its Chainlit child), then kill what is left."""
    for sig, wait in ((signal.SIGINT, 30), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout=wait)
            break
        except subprocess.TimeoutExpired:
            continue
