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
        pytest.fail(
            "node not found: install Debian's nodejs (apt-get install nodejs), as "
            "scripts/test does when run as root"
        )
    files = sorted(str(p) for p in NODE_TESTS.glob("*.test.mjs"))
    assert any("merge_vectors" in f for f in files)
    run = subprocess.run([node, "--test", *files], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    passed = re.search(r"^# pass (\d+)$", run.stdout, re.MULTILINE)
    assert passed is not None and int(passed.group(1)) >= 40, run.stdout[-2000:]
    assert re.search(r"^# fail 0$", run.stdout, re.MULTILINE), run.stdout[-2000:]


def test_the_js_client_and_the_portal_type_check_with_tsc() -> None:
    """The library's and the portal's JSDoc types hold under ``tsc --checkJs --strict``,
    the portal's calls into the library included: one run over both
    (tests/web/portal.jsconfig.json extends jsconfig.json, the library's own settings, and
    maps /web/client/ to its source). sw.js is left out: it runs in a worker, whose types
    clash with the page's."""
    tsc = NODE_TESTS.parent / "node_modules" / ".bin" / "tsc"
    if not tsc.exists():
        pytest.fail(
            "tsc not found: run scripts/test, which installs typescript for the web "
            "tests (npm install --prefix tests/web)"
        )
    run = subprocess.run(
        [str(tsc), "-p", str(NODE_TESTS.parent / "portal.jsconfig.json"), "--listFiles"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    checked = {Path(line).name for line in run.stdout.splitlines() if "waystation/web/" in line}
    library = {p.name for p in (NODE_TESTS.parents[2] / "waystation/web/client").glob("*.js")}
    assert library <= checked and "app.js" in checked, sorted(library - checked)
