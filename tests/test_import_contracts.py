"""The engine, the staging file and the clinic store never load the UI.

import-linter checks the import graph statically (`make lint`); this checks what actually
gets loaded, in a fresh interpreter, so a lazy or dynamic import cannot sneak Textual in.
"""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CORE = ("engine", "staging", "target", "sandbox")


def modules(package: str) -> list[str]:
    found = [package]
    for info in pkgutil.walk_packages([str(ROOT / package)], prefix=f"{package}."):
        found.append(info.name)
    return found


@pytest.mark.parametrize("package", CORE)
def test_core_package_loads_no_ui(package: str) -> None:
    names = modules(package)
    assert len(names) > 1
    code = (
        "import importlib, sys\n"
        f"for name in {names!r}:\n"
        "    importlib.import_module(name)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'tui'))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "", f"{package} loaded UI modules: {out.stdout.strip()}"


def test_the_check_would_notice_a_ui_import() -> None:
    code = "import sys, textual.app\nprint('textual' in sys.modules)\n"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"


def test_sandbox_does_not_load_the_engine() -> None:
    code = (
        "import sys, sandbox.runner, sandbox.serve, sandbox.generator\n"
        "core = ('engine', 'staging', 'target')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in core))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"
