"""The served process's collector settings (server/gc_tuning.py): fewer collections, and
reference cycles made while serving are still freed, so a long-running server does not
grow. Run in a child process: the settings are process-wide."""

from __future__ import annotations

import subprocess
import sys

CHILD = """
import gc, weakref
from waystation.server.gc_tuning import YOUNG_THRESHOLD, tune_gc_for_serving

tune_gc_for_serving()
assert gc.get_threshold()[0] == YOUNG_THRESHOLD
assert gc.get_freeze_count() > 0  # the app's startup objects are left out of later scans

class Node:
    pass

def cycle():
    a, b = Node(), Node()
    a.other, b.other = b, a
    return weakref.ref(a)

refs = [cycle() for _ in range(3 * YOUNG_THRESHOLD)]
alive = sum(r() is not None for r in refs)
assert alive < YOUNG_THRESHOLD, alive  # collections still ran while cycles piled up
gc.collect()
assert all(r() is None for r in refs)
print("ok")
"""


def test_cycles_made_while_serving_are_still_collected() -> None:
    done = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
