"""Build step that puts the chat UI's files into the wheel (everything else is in pyproject.toml).

The Chainlit app root (`chainlit.md`, `.chainlit/config.toml`, `public/`) stays at the top of the repository,
where `chainlit run` in a checkout expects it. A wheel has no top level to put it in, so `build_py` copies it into
the package as `assistant/apps/ui/root/`, which `assistant.apps.ui.launch.app_root()` serves from when
CoursePilot runs from an installed wheel. MANIFEST.in keeps the same files in the sdist.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
UI_ROOT_FILES = ["chainlit.md", ".chainlit/config.toml"]
UI_ROOT_FOLDERS = ["public"]
TARGET = Path("assistant") / "apps" / "ui" / "root"


class BuildPyWithUIRoot(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return  # an editable install serves the checkout itself
        target = Path(self.build_lib) / TARGET
        for name in UI_ROOT_FILES:
            source = HERE / name
            if not source.is_file():
                raise FileNotFoundError(f"{name} is missing: the wheel would have no chat UI")
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
        for name in UI_ROOT_FOLDERS:
            shutil.copytree(HERE / name, target / name, dirs_exist_ok=True)


setup(cmdclass={"build_py": BuildPyWithUIRoot})
