"""Start-up time of the commands that simulate nothing: ``dinv --help``, ``list``, ``show``.

Each command runs as a fresh process (the installed ``dinv`` script), ``--repeats``
times, beside a bare ``python -c pass`` (the interpreter's own start-up) and
``python -c "import brian2"`` (what the commands avoid). Printed: the median and
best wall time of each, and the goal (0.3 s). ``dinv show`` reads a results.json
written here (the record of a tiny finished run).

Run: ``python benchmarks/cli_speed.py`` (about 10 s on an idle 2-core machine);
``--repeats 20`` for steadier medians.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GOAL = 0.3
"""Seconds: what the commands that simulate nothing may take."""


def timed(command, repeats):
    """Wall seconds of ``command`` (a list) run ``repeats`` times, one after the other."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       check=True)
        times.append(time.perf_counter() - start)
    return times


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)
    dinv = shutil.which("dinv") or str(Path(sys.executable).with_name("dinv"))
    folder = Path(tempfile.mkdtemp(prefix="dinv_cli_speed_"))
    record = {"experiment": "linear-regression", "seed": 0, "config": {"quick": True},
              "wall_seconds": 1.0, "interrupted": False, "models": [], "final": {}}
    (folder / "results.json").write_text(json.dumps(record))
    cases = [("python -c pass", [sys.executable, "-c", "pass"]),
             ("dinv --help", [dinv, "--help"]),
             ("dinv list", [dinv, "list"]),
             ("dinv show DIR", [dinv, "show", str(folder)]),
             ("python -c 'import brian2'", [sys.executable, "-c", "import brian2"])]
    print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}; "
          f"{args.repeats} runs each")
    print(f"{'command':28s} {'median s':>9s} {'best s':>8s}  goal {GOAL} s")
    for label, command in cases:
        times = timed(command, args.repeats)
        median = statistics.median(times)
        verdict = "" if label.startswith("python") else ("  met" if median <= GOAL else
                                                        "  MISSED")
        print(f"{label:28s} {median:9.3f} {min(times):8.3f}{verdict}")
    print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
