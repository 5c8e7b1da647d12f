"""Profile the server process under a push storm and an initial pull, with py-spy.

    python -m bench.profile [--devices 4] [--per-device 2500] [--what push|pull|both]

Starts a ``waystation serve``, attaches ``py-spy record`` (all threads, collapsed stacks)
to it while the load runs, then prints the functions with the most samples, inclusive
(anywhere on the stack) and self (on top), restricted to frames of interest. Needs
py-spy (``pip install py-spy``) and ptrace permission on the child.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from bench import scenarios
from bench.server import Device, user_token
from bench.workload import DeviceWorkload, batches, facility_of


def _top(stacks: Path, limit: int) -> str:
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in stacks.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        n = int(count)
        frames = [f for f in stack.split(";") if "(" in f]
        # idle threads (selectors, thread-pool waits) are not work
        if not frames or any(
            w in frames[-1]
            for w in ("select (", "wait (", "_worker (", "run_forever (", "acquire (")
        ):
            continue
        total += n
        for f in set(frames):
            inclusive[f] += n
        own[frames[-1]] += n
    lines = [f"busy samples: {total}", "", "inclusive (% of busy samples):"]
    lines += [f"  {100 * n / total:5.1f}%  {f}" for f, n in inclusive.most_common(limit)]
    lines += ["", "self:"]
    lines += [f"  {100 * n / total:5.1f}%  {f}" for f, n in own.most_common(limit)]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--devices", type=int, default=4)
    p.add_argument("--per-device", type=int, default=2500)
    p.add_argument("--what", choices=("push", "pull", "both"), default="both")
    p.add_argument("--top", type=int, default=45)
    p.add_argument("--out", type=Path, default=None, help="keep the collapsed stacks here")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="waystation-profile-") as tmp:
        params = scenarios.Params(Path(tmp), None)
        server = scenarios._start(params, "profile")
        stacks = args.out or Path(tmp) / "stacks.txt"
        try:
            ids = [f"d-{d:05d}" for d in range(args.devices)]
            devices = scenarios._devices(server, ids, facility_of)
            work = [
                list(batches(DeviceWorkload(1, d, ids[d]).ops(args.per_device)))
                for d in range(args.devices)
            ]
            if args.what == "pull":  # the data to pull, written before py-spy attaches
                scenarios.push_all(devices, work)
            py_spy = str(Path(sys.executable).with_name("py-spy"))  # the venv's, unactivated
            spy = subprocess.Popen(
                [
                    py_spy,
                    "record",
                    "--pid",
                    str(server.pid),
                    "--threads",
                    "--rate",
                    "500",
                    "--format",
                    "raw",
                    "--output",
                    str(stacks),
                    "--nonblocking",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            time.sleep(1.0)
            if args.what in ("push", "both"):
                print(scenarios.push_all(devices, work)["ops_per_s"], "ops/s", file=sys.stderr)
            if args.what in ("pull", "both"):
                admin = Device.register(server.url, user_token(server.url, "admin"), "d-prof")
                for _ in range(3):
                    print(
                        scenarios.raw_pull_all(admin, server)["records_per_s"],
                        "records/s",
                        file=sys.stderr,
                    )
            spy.send_signal(2)  # SIGINT: py-spy writes its output and exits
            _, err = spy.communicate(timeout=60)
            if not stacks.exists():
                raise SystemExit(f"py-spy wrote nothing: {err.decode()[-1000:]}")
        finally:
            server.stop()
        print(_top(stacks, args.top))


if __name__ == "__main__":
    main()
