"""The commands that simulate nothing import neither Brian2, matplotlib nor scipy.

``dinv --help``, ``dinv list`` and ``dinv show DIR`` answer in a fraction of a
second (measured by ``benchmarks/cli_speed.py``, not here) because they leave
the heavy packages out; each is run in a fresh interpreter and the modules it
loaded are checked.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from dinv.experiments.catalogue import BUILT_IN_POPULATIONS

HEAVY = ("brian2", "matplotlib", "scipy", "sympy")


def _loaded_after(args, cwd):
    """The top-level packages imported by ``dinv ARGS`` run in a fresh interpreter,
    and its exit status."""
    code = ("import sys\nfrom dinv.experiments.cli import main\n"
            "try:\n    status = main(sys.argv[1:])\nexcept SystemExit as exc:\n"
            "    status = exc.code\n"
            "print('LOADED', sorted({m.split('.')[0] for m in sys.modules}))\n"
            "sys.exit(status)\n")
    result = subprocess.run([sys.executable, "-c", code, *args], capture_output=True,
                            text=True, cwd=cwd, check=False)
    line = [t for t in result.stdout.splitlines() if t.startswith("LOADED")]
    assert line, result.stdout + result.stderr
    return eval(line[-1][len("LOADED "):]), result.returncode


def _finished_run(folder):
    """A folder with the results.json of a (tiny, hand-written) finished run."""
    folder.mkdir()
    record = {"experiment": "linear-regression", "seed": 0, "config": {"quick": True},
              "wall_seconds": 1.0, "interrupted": False, "models": [], "final": {}}
    (folder / "results.json").write_text(json.dumps(record))
    return folder


@pytest.mark.parametrize("args", [["--help"], ["list"], ["show", "RUN"]])
def test_no_simulation_commands_leave_brian2_out(tmp_path, args):
    """`dinv --help`, `dinv list` and `dinv show DIR` import no Brian2, matplotlib,
    scipy or sympy (numpy only for `list`, whose rule registry holds numpy functions)."""
    if "RUN" in args:
        args = ["show", str(_finished_run(tmp_path / "run"))]
    loaded, status = _loaded_after(args, tmp_path)
    assert status == 0
    assert not set(HEAVY) & set(loaded), sorted(set(HEAVY) & set(loaded))
    if args[0] != "list":
        assert "numpy" not in loaded


def test_run_help_of_one_experiment_still_works(tmp_path):
    """The lazy imports leave `dinv run NAME --help` whole (it loads the protocol)."""
    result = subprocess.run([sys.executable, "-m", "dinv.experiments.cli", "run",
                             "linear-regression", "--help"], capture_output=True, text=True,
                            cwd=Path(__file__).resolve().parents[1], check=False)
    assert result.returncode == 0, result.stderr
    assert "spiking_steps" in result.stdout


def test_catalogue_matches_the_population_registry():
    """`dinv list` shows the population models from a Brian2-free table: exactly the
    models the package registers, with their kinds and descriptions (read in a fresh
    interpreter, before any test registers its own)."""
    code = ("import json\nfrom dinv.circuits import POPULATION_MODELS as M\n"
            "print(json.dumps([[n, m.kind, m.description] for n, m in M.items()]))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=False)
    assert result.returncode == 0, result.stderr
    registered = [tuple(entry) for entry in json.loads(result.stdout.splitlines()[-1])]
    assert list(BUILT_IN_POPULATIONS) == registered
