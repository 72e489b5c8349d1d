"""The gallery's examples (``examples/``) run as scripts, as a user runs them.

Each example runs on its own in a fresh interpreter from the repository root,
so that it imports this checkout's ``dinv``; it must exit with status 0 and
print what it shows. The documentation build (``python -m sphinx ... docs``)
runs them again through sphinx-gallery. Together they take more than a minute
on a loaded 2-core machine (mostly Brian2's import and first compilations), so
the runs are marked slow; the structural checks are not. The Python blocks of
the user guide (``docs/guide/*.rst``) run the same way, one script per page.
"""

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("plot_*.py"))


def test_there_are_examples_and_each_has_a_title():
    """sphinx-gallery needs a module docstring whose first lines are a title."""
    assert len(EXAMPLES) >= 6, EXAMPLES
    for path in EXAMPLES:
        doc = ast.get_docstring(ast.parse(path.read_text()))
        assert doc, f"{path.name} has no docstring"
        title, underline = doc.splitlines()[:2]
        assert title.strip() and set(underline.strip()) == {"="}, path.name
        assert len(underline.strip()) >= len(title.strip()), path.name


def test_examples_are_seeded():
    """Deterministic: every example that draws random numbers makes a seeded generator."""
    for path in EXAMPLES:
        text = path.read_text()
        if "random" in text:
            assert "default_rng(" in text or "seed" in text, path.name
        assert "np.random.rand" not in text and "np.random.seed" not in text, path.name


NEURON_EXAMPLES = [p for p in EXAMPLES if p.stem.endswith("_population")]
"""The gallery's own neurons made populations by the ensemble builder."""


@pytest.mark.parametrize("path", NEURON_EXAMPLES, ids=[p.stem for p in NEURON_EXAMPLES])
def test_neuron_examples_are_short_and_use_the_public_api(path):
    """At most 25 lines of code (imports included; no comments, blanks or docstring),
    and nothing imported from a private name or from the builder's modules themselves:
    the neuron comes in through `dinv.circuits`."""
    tree = ast.parse(path.read_text())
    lines = path.read_text().splitlines()[tree.body[0].end_lineno:]
    code = [line for line in lines if line.strip() and not line.strip().startswith("#")]
    assert len(code) <= 25, (path.name, len(code))
    public = {"numpy", "brian2", "matplotlib.pyplot", "dinv.circuits", "dinv.theory",
              "dinv.analysis.metrics", "dinv.experiments.spiking_inversion"}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            assert node.module in public, (path.name, node.module)
            assert not any(alias.name.startswith("_") for alias in node.names)
        elif isinstance(node, ast.Import):
            assert all(alias.name in public for alias in node.names), path.name
    assert "neuron_population" in path.read_text() and "NeuronModel(" in path.read_text()
    assert len(NEURON_EXAMPLES) == 3


@pytest.mark.slow
@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_runs(path, tmp_path):
    """The example runs to the end as a script and prints its numbers."""
    paths = [str(ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    env = dict(os.environ, MPLBACKEND="Agg", PYTHONPATH=os.pathsep.join(paths))
    done = subprocess.run([sys.executable, str(path)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{path.name} failed:\n{done.stdout}\n{done.stderr}"
    assert done.stdout.strip(), f"{path.name} printed nothing"


GUIDE = ROOT / "docs" / "guide"
GUIDE_SKIPPED = {"sweeps.rst"}  # its block reads a sweep folder; examples/plot_06_sweep.py runs one
GUIDE_SETUP = {
    # its block reads the folder of the README's first command: a reduced run of it
    "results_json.rst": ["run", "linear-regression", "--quick", "--models",
                         "BP,NDI a=0.01,DI a=0.01", "--out", "results/linear", "--no-progress"],
}
"""Commands run (``dinv`` in-process, in the page's folder) before a page's blocks."""


def python_blocks(path):
    """The ``.. code-block:: python`` blocks of a reStructuredText page, dedented."""
    blocks, lines = [], path.read_text().splitlines()
    for k, line in enumerate(lines):
        if line.strip() != ".. code-block:: python":
            continue
        indent = len(line) - len(line.lstrip()) + 3
        body = []
        for text in lines[k + 1:]:
            if text.strip() and len(text) - len(text.lstrip()) < indent:
                break
            body.append(text[indent:])
        blocks.append("\n".join(body).strip("\n"))
    return blocks


GUIDE_PAGES = sorted(p for p in GUIDE.glob("*.rst")
                     if python_blocks(p) and p.name not in GUIDE_SKIPPED)


@pytest.mark.slow
@pytest.mark.parametrize("page", GUIDE_PAGES, ids=[p.stem for p in GUIDE_PAGES])
def test_user_guide_code_runs(page, tmp_path):
    """The Python blocks of each user-guide page run, in order, as one script."""
    script = tmp_path / f"{page.stem}.py"
    setup = []
    if page.name in GUIDE_SETUP:
        command = GUIDE_SETUP[page.name]
        setup = [f"from dinv.experiments.cli import main\nassert main({command!r}) == 0"]
    script.write_text("\n\n".join(setup + python_blocks(page)) + "\n")
    paths = [str(ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    env = dict(os.environ, MPLBACKEND="Agg", PYTHONPATH=os.pathsep.join(paths))
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{page.name}:\n{done.stdout}\n{done.stderr}"
