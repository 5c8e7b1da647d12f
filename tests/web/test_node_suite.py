"""The JS client's own tests under node's test runner (tests/web/node/: the shared merge
vectors and unit tests of its pure modules), run from pytest so one command runs all.
Node is Debian's ``nodejs`` (scripts/test installs it when missing, as root)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

NODE_TESTS = Path(__file__).parent / "node"


def test_the_js_client_passes_its_node_suite_and_the_shared_merge_vectors() -> None:
    node = shutil.which("node") or shutil.which("nodejs")
    if node is None:
        pytest.fail("node not found: install Debian's nodejs (apt-get install nodejs), as "
                    "scripts/test does when run as root")
    files = sorted(str(p) for p in NODE_TESTS.glob("*.test.mjs"))
    assert any("merge_vectors" in f for f in files)
    run = subprocess.run([node, "--test", *files], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    passed = re.search(r"^# pass (\d+)$", run.stdout, re.MULTILINE)
    assert passed is not None and int(passed.group(1)) >= 40, run.stdout[-2000:]
    assert re.search(r"^# fail 0$", run.stdout, re.MULTILINE), run.stdout[-2000:]


def test_the_js_client_type_checks_with_tsc() -> None:
    """The library's JSDoc types hold under ``tsc --checkJs --strict`` (tests/web/jsconfig.json)."""
    tsc = NODE_TESTS.parent / "node_modules" / ".bin" / "tsc"
    if not tsc.exists():
        pytest.fail("tsc not found: run scripts/test, which installs typescript for the web "
                    "tests (npm install --prefix tests/web)")
    run = subprocess.run([str(tsc), "-p", str(NODE_TESTS.parent / "jsconfig.json")],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
