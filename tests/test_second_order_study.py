"""The second-order study (dinv run second-order): known answers in its results.json,
records, tables and figures."""

import json

import numpy as np
import pytest

from dinv.analysis import load_results, validate_results
from dinv.errors import InputError
from dinv.experiments import second_order
from dinv.experiments.cli import main
from dinv.experiments.registry import EXPERIMENTS, make_config


@pytest.fixture(scope="module")
def linear_square(tmp_path_factory):
    """linear-square at alpha 1e-8, damping 1e-10: BP, NDI, DI, DI-T and GN, 11 updates,
    measured at updates 0, 5 and 10, through the command line."""
    out = tmp_path_factory.mktemp("so") / "out"
    code = main(["run", "second-order", "--out", str(out), "--no-progress", "--seed", "2",
                 "--models", "BP,NDI,DI,DI-T,GN", "--set", 'cases=["linear-square"]',
                 "--set", 'case_settings={"linear-square": {"steps": 11, "measure_every": 5}}'])
    assert code == 0
    return out, json.loads((out / "results.json").read_text())


def test_known_answers_in_results_json(linear_square):
    """NDI's and DI's hidden errors lie along the Gauss-Newton target (< 1e-3 degrees);
    BP's angle to BP and the GN optimiser's to GN are 0."""
    _, record = linear_square
    validate_results(record)
    angles = record["angles"]
    assert {a["step"] for a in angles} == {0, 5, 10}
    assert {a["damping"] for a in angles} == {1e-10}
    for rule in ("NDI", "DI", "DI-T"):
        hidden = [a["to_gnt_deg"] for a in angles if a["rule"] == rule and a["layer"] < 3]
        assert len(hidden) == 6 and max(hidden) < 1e-3, rule
    assert all(a["to_bp_deg"] == 0.0 for a in angles if a["rule"] == "BP")
    assert all(a["to_gn_deg"] == 0.0 for a in angles if a["rule"] == "GN")
    assert all(a["null_share"] is None for a in angles if a["rule"] == "GN")
    # BP is not the Gauss-Newton target once training has made the weights other than
    # orthogonal: the known answer could fail.
    assert min(a["to_gnt_deg"] for a in angles
               if a["rule"] == "BP" and a["layer"] == 1 and a["step"] > 0) > 1.0
    case = record["cases"]["linear-square"]
    assert case["models"] == ["BP", "NDI", "DI", "DI-T", "GN"] and case["rules"]["GN"] == "gn"
    assert case["gn_method"] == "dense" and case["gn_residual"] < 1e-6
    assert set(record["settling"]) == {"linear-square DI", "linear-square DI-T"}


def test_medians_tables_and_figures(linear_square, capsys):
    out, record = linear_square
    medians = {(m["rule"], m["layer"]): m for m in record["medians"]}
    for (rule, layer), m in medians.items():
        values = [a["to_gn_deg"] for a in record["angles"]
                  if a["rule"] == rule and a["layer"] == layer]
        assert m["to_gn_deg"] == pytest.approx(float(np.median(values)))
    frame = load_results(out)
    rows = frame[(frame["model"] == "linear-square NDI") & (frame["metric"] == "to_gnt_deg")]
    assert len(rows) == 9 and set(rows["unit"]) == {"degrees"}
    assert main(["show", str(out)]) == 0
    shown = capsys.readouterr().out
    assert "linear-square (damping 1e-10): median over training" in shown
    assert (out / "null_share.png").read_bytes()[:4] == b"\x89PNG"


def test_case_settings_are_checked():
    config = make_config(EXPERIMENTS["second-order"], overrides={
        "case_settings": {"toy-tp": {"stepz": 3}}})
    with pytest.raises(InputError, match="no settings \\['stepz'\\]"):
        second_order.run(config, progress=False)
    config = make_config(EXPERIMENTS["second-order"], overrides={"cases": ["toy"]})
    with pytest.raises(InputError, match="unknown case 'toy'"):
        second_order.run(config, progress=False)
    config = make_config(EXPERIMENTS["second-order"], overrides={"models": ["XX"]})
    with pytest.raises(InputError, match="unknown model"):
        second_order.run(config, progress=False)
