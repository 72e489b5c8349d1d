"""Sphinx configuration of the dynamic-inversion documentation.

Build from the repository root (warnings are errors)::

    python -m sphinx -W --keep-going -b html docs docs/_build/html

The gallery (``examples/`` at the repository top level) is run by
sphinx-gallery on every build.
"""

import os
import sys
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# A source checkout: `import dinv` finds the checkout's dinv/, whose sub-packages
# are the top-level folders (see dinv/__init__.py), installed or not.
sys.path.insert(0, str(ROOT))
os.environ.setdefault("MPLBACKEND", "Agg")

import dinv  # noqa: E402

project = "dynamic-inversion"
author = "the dynamic-inversion developers"
copyright = "2020-2026, " + author
release = dinv.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    # MathJax bundled into _static/mathjax: the equations render with no network (a
    # cluster node, a train); without it the pages load MathJax from a CDN.
    "sphinx-mathjax-offline",
    "sphinx.ext.viewcode",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]

templates_path = ["_templates"]
exclude_patterns = ["_build", "**.ipynb_checkpoints", "auto_examples/*.ipynb",
                    "auto_examples/*.py", "auto_examples/*.zip", "auto_examples/*.json",
                    "auto_examples/*.md5", "auto_examples/*.pickle"]
# `name` in a docstring is a cross-reference where it resolves, code otherwise.
default_role = "py:obj"

# -- API reference ---------------------------------------------------------
autosummary_generate = True
autosummary_imported_members = False
# The module pages list their classes, functions, exceptions and constants
# (_templates/autosummary/module.rst); constants' values are shown by
# `_show_value` below, not in their headers.
autodoc_default_options = {"show-inheritance": True}
autodoc_member_order = "bysource"
autodoc_typehints = "none"
# Brian2 is imported by the circuits; it is installed, so nothing is mocked.
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False
numpydoc_validation_checks = set()



def _escape_bars(app, what, name, obj, options, lines):
    """Make the docstrings' plain-text norms, ``|x|``, literal text.

    The docstrings write norms and absolute values as ``|x|``, which
    reStructuredText reads as substitution references. Outside inline
    literals and literal blocks every ``|`` is escaped, so the docstrings stay
    readable as plain text in ``help()`` and render as written here.
    """
    literal_indent = None
    for i, line in enumerate(lines):
        stripped = line.lstrip()
        indent = len(line) - len(stripped)
        if literal_indent is not None:
            if not stripped or indent > literal_indent:
                continue
            literal_indent = None
        if "|" in line:
            parts = line.split("``")
            for k in range(0, len(parts), 2):
                parts[k] = parts[k].replace("|", "\\|")
            lines[i] = "``".join(parts)
        if line.rstrip().endswith("::"):
            literal_indent = indent


def _canonical_name(target):
    """The documented name of ``target`` (``dinv.circuits.settle_layer`` ->
    ``dinv.circuits.layer.settle_layer``), found by importing it; or None."""
    import importlib

    parts = target.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        try:
            for attr in parts[cut:]:
                obj = getattr(obj, attr)
        except AttributeError:
            return None
        module, qualname = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
        return f"{module}.{qualname}" if module and qualname else None
    return None


def _resolve_reexported(app, env, node, contnode):
    """Link names the user guide and the docstrings write in their short or
    re-exported form (``settle_layer``, ``dinv.circuits.SettleOptions``) to the
    page that documents them, where exactly one object fits."""
    if node.get("refdomain") != "py":
        return None
    domain = env.get_domain("py")
    target = node["reftarget"].lstrip(".~")
    names = [target]
    canonical = _canonical_name(target) if "." in target else None
    if canonical:
        names.insert(0, canonical)
    if "." in target:  # a re-exported constant has no __module__: its last part
        names.append(target.rsplit(".", 1)[1])
    for name in names:
        if name in domain.objects:
            found = [name]
        elif "." not in name or name == target:
            found = [full for full in domain.objects if full.endswith("." + name)]
        else:
            found = []
        if len(found) == 1:
            kind = domain.objects[found[0]].objtype
            role = {"function": "func", "class": "class", "method": "meth", "module": "mod",
                    "attribute": "attr", "data": "data", "property": "attr",
                    "exception": "exc"}.get(kind, "obj")
            return domain.resolve_xref(env, node["refdoc"], app.builder, role, found[0], node,
                                       contnode)
    return None


class _Shown:
    """A default value shown by a short text in a signature."""

    def __init__(self, text):
        self.text = text

    def __repr__(self):
        return self.text


def _short_defaults(app, what, name, obj, options, signature, return_annotation):
    """Show long default values (a dataclass's default `PopulationModel`, whose
    repr is its whole equations) by their type: ``system=<PopulationModel>``."""
    import inspect

    if not signature or len(signature) < 200:
        return None
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return None
    params = [p.replace(default=_Shown(f"<{type(p.default).__name__}>"))
              if p.default is not p.empty and len(repr(p.default)) > 60 else p
              for p in sig.parameters.values() if p.name != "self"]
    return str(sig.replace(parameters=params, return_annotation=sig.empty)), return_annotation


def _show_value(app, what, name, obj, options, lines):
    """Show a module constant's value below its docstring: a multi-line string
    (the Brian2 equations) as a text block, a short value inline, a long one
    not at all (a registry: its entries are documented where they are made)."""
    if what not in ("data", "attribute") or callable(obj) or isinstance(obj, type):
        return
    if isinstance(obj, str) and "\n" in obj.strip():
        lines += ["", ".. code-block:: text", ""]
        lines += ["   " + line for line in obj.strip("\n").splitlines()]
        return
    text = repr(obj)
    if len(text) <= 100 and "``" not in text:
        lines += ["", f"Value: ``{text}``"]


def setup(app):
    app.connect("autodoc-process-docstring", _show_value)
    app.connect("autodoc-process-docstring", _escape_bars, priority=400)
    app.connect("autodoc-process-signature", _short_defaults)
    app.connect("missing-reference", _resolve_reexported)


# The docstrings' first sentences cite equations and figures ("(Eq. 10)"):
# autosummary's one-line summaries must not end at those periods.
import sphinx.ext.autosummary as _autosummary  # noqa: E402

_autosummary.WELL_KNOWN_ABBREVIATIONS = tuple(_autosummary.WELL_KNOWN_ABBREVIATIONS) + (
    "Eq.", "Eqs.", "Fig.", "Figs.", "Suppl.", "Sec.")

# The core modules (dinv/*.py) are listed from the folder, so that a new one is
# documented without editing api.rst; the sub-packages are listed recursively
# by autosummary (api.rst).
_core = sorted(f"dinv.{path.stem}" for path in (ROOT / "dinv").glob("*.py")
               if not path.stem.startswith("_"))
(ROOT / "docs" / "api").mkdir(exist_ok=True)
_core_page = ("Core modules\n============\n\n"
              "Shared by the whole package; none of them imports Brian2 or matplotlib.\n\n"
              ".. autosummary::\n   :toctree: .\n\n"
              + "".join(f"   {name}\n" for name in _core))
_core_path = ROOT / "docs" / "api" / "core.rst"
if not _core_path.is_file() or _core_path.read_text() != _core_page:
    _core_path.write_text(_core_page)

# -- Gallery ---------------------------------------------------------------
sphinx_gallery_conf = {
    "examples_dirs": str(ROOT / "examples"),
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "within_subsection_order": "FileNameSortKey",
    "download_all_examples": False,
    "remove_config_comments": True,
    "abort_on_example_error": True,
    "matplotlib_animations": False,
    "show_memory": False,
    "image_scrapers": ("matplotlib",),
    # The computation-times pages load jQuery and DataTables from CDNs: the site must
    # work offline, so they are not written.
    "write_computation_times": False,
}

# -- HTML ------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = "dynamic-inversion"
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
}
html_static_path = []
html_show_sourcelink = False

# Brian2 and matplotlib announce things while the examples run; the gallery's
# own output is what the pages show.
warnings.filterwarnings("ignore", category=UserWarning, message="Matplotlib is currently using agg")
