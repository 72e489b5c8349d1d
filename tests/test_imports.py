"""The modules that need no simulation never import Brian2."""

import subprocess
import sys
from pathlib import Path

BRIAN2_FREE = ("dinv.theory", "dinv.models.network", "dinv.models.rules",
               "dinv.models.stabilise", "dinv.analysis.metrics", "dinv.analysis.stability",
               "dinv.experiments.datasets", "dinv.experiments.errors", "dinv.analysis.sweeps",
               "dinv.analysis.results")


def test_closed_form_modules_leave_brian2_out():
    """Imported in a fresh interpreter, none of them pulls in brian2."""
    code = (f"import sys\nimport {', '.join(BRIAN2_FREE)}\n"
            "assert 'brian2' not in sys.modules, "
            "sorted(m for m in sys.modules if m.startswith('dinv'))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=Path(__file__).resolve().parents[1])
    assert result.returncode == 0, result.stderr


def test_user_modules_do_not_shadow_the_package(tmp_path):
    """A user's own models.py, circuits.py, ... in the working folder changes nothing."""
    for name in ("models", "circuits", "analysis", "experiments"):
        (tmp_path / f"{name}.py").write_text("raise SystemExit('the user module was imported')\n")
    code = ("import dinv.circuits, dinv.models.training, dinv.analysis.metrics, "
            "dinv.experiments.cli\nprint(dinv.__version__)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=tmp_path)
    assert result.returncode == 0, result.stderr + result.stdout
    assert result.stdout.strip() not in ("", "unknown")
