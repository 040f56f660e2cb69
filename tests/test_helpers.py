"""One copy of each shared helper: settings from the environment, free ports, the percentile."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from assistant.core.errors import CoursePilotError
from assistant.core.processes import free_port
from assistant.core.settings import SETTINGS_ENV, settings_from_env
from evals.metrics import percentile


def test_settings_from_env_names_the_invalid_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COURSEPILOT_RETRIEVAL_K", "many")
    with pytest.raises(CoursePilotError) as caught:
        settings_from_env()
    assert "COURSEPILOT_RETRIEVAL_K" in caught.value.message and caught.value.fix
    monkeypatch.delenv("COURSEPILOT_RETRIEVAL_K")
    monkeypatch.setenv(SETTINGS_ENV, json.dumps({"retrieval": {"k": 3}}))
    assert settings_from_env().retrieval.k == 3  # the chat server's launcher hands over its settings


def test_cli_exits_2_naming_an_invalid_setting(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COURSEPILOT_")}
    env["COURSEPILOT_RETRIEVAL_K"] = "many"
    done = subprocess.run(
        [sys.executable, "-m", "assistant.apps.cli", "ask", "What is SBI?"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2, done.stderr[-2000:]
    assert "COURSEPILOT_RETRIEVAL_K" in done.stderr + done.stdout and "Traceback" not in done.stderr


def test_free_port_never_hands_out_a_port_twice() -> None:
    ports = [free_port() for _ in range(50)]
    assert len(set(ports)) == len(ports)


def test_one_percentile_definition_for_evals_bench_and_beir() -> None:
    from evals import beir
    from evals.bench import latency

    assert beir.percentile is percentile and latency.percentile is percentile
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5  # linear interpolation, numpy's default
    assert percentile(list(range(1, 101)), 95) == pytest.approx(95.05)
