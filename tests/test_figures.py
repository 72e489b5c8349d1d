"""The figures, drawn from small synthetic results: colours, letters, axes, notes."""

import re
import string

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.collections import PolyCollection
from matplotlib.ticker import NullFormatter

from dinv.analysis.figures import (
    PLATEAU_VARIATION,
    Panel,
    alpha_sweep_figure,
    autoencoder_figure,
    classification_figure,
    plot_curves,
    plot_layer_curves,
    timescales_figure,
)
from dinv.analysis.metrics import input_variation, running_quantiles
from dinv.analysis.style import MODEL_COLOURS, colours, log_ticks
from dinv.experiments import autoencoder, classification, nonlinear_regression
from dinv.experiments.registry import get_experiment

RNG = np.random.default_rng(0)


def regression_results(models, layers, samples=120, fixed_norm=False):
    """Results of a regression run, as `dinv.experiments.regression` writes them."""
    rules = {spec.name: spec.rule for spec in models}
    nmse = {name: np.geomspace(1.0, 10.0 ** -RNG.uniform(2, 12), samples) for name in rules}
    shape = (layers, samples - 1)
    curves = {key: {name: RNG.uniform(0, 30, shape) for name in rules}
              for key in ("angle_B", "angle_ndi", "angle_pbp")}
    curves["eigenvalue"] = {name: -RNG.uniform(0.001, 0.1, shape) for name in rules}
    for name, rule in rules.items():
        if rule == "ndi":
            curves["angle_ndi"][name][:] = 0.0  # NDI against itself: exactly 0
    return {"nmse": nmse, "curves": curves, "rules": rules,
            "config": {"fixed_norm": fixed_norm}}


def nonlinear_figure():
    results = regression_results(nonlinear_regression.MODELS, layers=2)
    return get_experiment("nonlinear-regression").figure(results), results


def letters(fig):
    """Letters of the lettered panels, in the order the axes were added."""
    titles = [ax.get_title(loc="left") for ax in fig.axes]
    return [t[0] for t in titles if re.match(r"^[a-z]  ", t)]


def consecutive(found):
    return found == list(string.ascii_lowercase[:len(found)])


def test_every_model_has_its_own_colour_in_every_figure():
    names = [spec.name for spec in nonlinear_regression.MODELS + classification.MODELS]
    names += list(dict.fromkeys(spec.name.rsplit(" ", 1)[0] for spec in autoencoder.MODELS))
    for group in (names[:12], [spec.name for spec in classification.MODELS],
                  [spec.name.rsplit(" ", 1)[0] for spec in autoencoder.MODELS[:5]]):
        given = colours(group)
        assert len(set(given.values())) == len(group), given
    # The table itself: no colour twice, and every registered model in it.
    assert len(set(MODEL_COLOURS.values())) == len(MODEL_COLOURS)
    assert {spec.name for spec in nonlinear_regression.MODELS + classification.MODELS} \
        <= set(MODEL_COLOURS)
    # Consistent: a model's colour does not depend on the others drawn with it.
    assert colours(["SLDI R-Init a=0.01"]) == {"SLDI R-Init a=0.01": colours(names)[
        "SLDI R-Init a=0.01"]}
    assert colours(["BP", "SLDI R-Init a=0.01"])["BP"] == colours(["BP"])["BP"]


def test_models_outside_the_table_get_colours_of_their_own():
    given = colours(["BP", "my rule", "DI a=0.01", "another"])
    assert len(set(given.values())) == 4
    assert given["BP"] == MODEL_COLOURS["BP"]


@pytest.mark.parametrize("fixed_norm", [False, True])
def test_linear_regression_figure(fixed_norm):
    from dinv.experiments import linear_regression

    results = regression_results(linear_regression.MODELS, layers=1, fixed_norm=fixed_norm)
    fig = get_experiment("linear-regression").figure(results)
    assert letters(fig) == list("abcdef")
    by_letter = {ax.get_title(loc="left")[0]: ax for ax in fig.axes}
    assert "Fig. 3b" in by_letter["a"].get_title(loc="left") if fixed_norm else True
    angle = by_letter["c"]
    assert "angle(delta_DI, delta_NDI)" in angle.get_title(loc="left")
    assert angle.get_yscale() == "log"
    # Bars of the final error: one colour per model.
    bars = [p.get_facecolor() for p in by_letter["f"].patches]
    assert len(bars) == len(linear_regression.MODELS) == len(set(bars))


def test_curve_hidden_by_another_stays_visible():
    """DI on top of its closed form NDI: a different line style, NDI wider below."""
    from dinv.experiments import linear_regression

    results = regression_results(linear_regression.MODELS, layers=1)
    results["curves"]["angle_B"]["DI a=0.01"] = results["curves"]["angle_B"]["NDI a=0.01"]
    fig = get_experiment("linear-regression").figure(results)
    ax = next(a for a in fig.axes if "angle(B, -W^T)" in a.get_title(loc="left"))
    lines = {line.get_label(): line for line in ax.get_lines()}
    di, ndi = lines["DI a=0.01"], lines["NDI a=0.01"]
    assert di.get_linestyle() != ndi.get_linestyle()
    assert ndi.get_linewidth() > 2 * di.get_linewidth() and ndi.get_zorder() < di.get_zorder()
    assert di.get_marker() != ndi.get_marker()


def test_nonlinear_regression_figure():
    fig, results = nonlinear_figure()
    assert consecutive(letters(fig)) and len(letters(fig)) == 6
    titles = {ax.get_title(loc="left"): ax for ax in fig.axes}
    for paper in ("Fig. 3i", "Fig. 3k"):
        ax = next(a for t, a in titles.items() if paper in t)
        assert "running median" in ax.get_title(loc="left")
        bands = [c for c in ax.collections if isinstance(c, PolyCollection)]
        drawn = {"di", "di-targets", "dfc"} if paper == "Fig. 3i" else {"sldi"}
        shown = [m for m, r in results["rules"].items() if r in drawn]
        assert len(bands) == 2 * len(shown)  # one interquartile band per model and layer
        assert ax.get_yscale() == "log"
    # No panel carries its own legend: one legend for the figure, below the panels.
    assert all(ax.get_legend() is None for ax in fig.axes)
    assert len(fig.legends) == 1
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert set(results["rules"]) <= set(labels)


def test_bar_chart_has_no_minor_tick_labels():
    fig, _ = nonlinear_figure()
    bars = next(ax for ax in fig.axes if ax.patches)
    assert bars.get_xscale() == "log"
    assert isinstance(bars.xaxis.get_minor_formatter(), NullFormatter)
    assert len(bars.get_xticks()) >= 3


@pytest.mark.parametrize("low, high", [(0.6, 0.95), (9.5, 11.0), (5.2, 14.7), (0.2, 20.0),
                                       (4.4, 16.0), (1e-16, 2.0),
                                       (140.0, 160.0), (3e-8, 1.2e-5), (6.5e-5, 1.42e-4),
                                       (3.0, 30.0), (11.0, 95.0)])
def test_log_ticks_plain_and_enough(low, high):
    from matplotlib.figure import Figure

    ax = Figure().add_subplot()
    ax.plot([1, 2], [low, high])
    ax.set_yscale("log")
    ax.set_ylim(low, high)
    log_ticks(ax)
    ticks = [t for t in ax.get_yticks() if low <= t <= high]
    labels = [ax.yaxis.get_major_formatter()(t) for t in ticks]
    assert len(ticks) >= 3, labels
    assert len(ticks) <= 8, labels
    # Room for the labels: neighbours at least a tenth of the axis apart.
    gaps = np.diff(np.log10(ticks)) / np.log10(high / low)
    assert gaps.min() >= 0.1, labels
    # Both ends labelled: no more than a third of the axis beyond the outermost ticks.
    ends = np.log10([ticks[0] / low, high / ticks[-1]]) / np.log10(high / low)
    assert ends.max() <= 1 / 3, labels
    assert isinstance(ax.yaxis.get_minor_formatter(), NullFormatter)
    if high < 1e5 and low >= 1e-3:
        assert not any("times" in lab or "^" in lab for lab in labels), labels


def pair_results():
    ratios = (0.25, 0.5, 1.0, 4.0, 16.0)
    t = np.arange(0, 100.0)
    return [{"ratio": r, "time": 10 * r, "rate": 0.2 / r, "predicted_rate": 0.21 / r,
             "overshoot": max(0.0, 0.2 - 0.2 * r), "trace_t": t,
             "trace_error": np.exp(-t * 0.2 / r)} for r in ratios]


def test_timescales_figure():
    chains = {f"{a}, {h}": {"time": 10.0 * (i + 1), "overshoot": 0.0}
              for i, (a, h) in enumerate((a, h) for a in ("sequential", "repeat")
                                         for h in ("slower up the hierarchy", "uniform"))}
    grid = [{"kp": kp, "kd": kd, "time": 13.0, "overshoot": 0.01, "predicted_rate": 0.2 + kd,
             "step_radius": 0.9 if kp < 4 else 1.2, "diverged": None}
            for kp in (0.0, 1.0, 4.0) for kd in (0.0, 0.5)]
    pid = {"grid": grid, "integral": {"time": 13.0, "overshoot": 0.026}, "filter_ratio": 1.0}
    fig = timescales_figure(pair_results(), chains, 0.01, pid)
    assert letters(fig) == list("abcdef")
    decay = next(ax for ax in fig.axes if "overshoot" in ax.get_title(loc="left")
                 and ax.get_legend() is not None)
    assert any("overshoot" in t.get_text() for t in decay.get_legend().get_texts())
    labels = [decay.xaxis.get_major_formatter()(v) for v in decay.get_xticks()]
    assert labels == ["0.25", "0.5", "1", "4", "16"]
    # Chains: short tick labels (grouped bars), not one long label per bar.
    bars = next(ax for ax in fig.axes if ax.patches)
    assert len(bars.get_xticklabels()) == 2 and bars.get_legend() is not None


def autoencoder_results(learnt):
    rng = np.random.default_rng(1)
    models = [spec.name for spec in autoencoder.MODELS]
    inputs = rng.uniform(0, 1, (4, 16))
    images = {"input": inputs}
    for name in models:
        images[name] = inputs if learnt else np.tile(inputs.mean(axis=0), (4, 1))
    history = [{"epoch": e, "train_error": list(rng.uniform(5, 15, len(models)))}
               for e in (0.0, 0.5, 1.0)]
    tsne = {"labels": rng.integers(0, 10, 30),
            "maps": {"DI uniform": rng.normal(size=(30, 2)),
                     "BP orthogonal": rng.normal(size=(30, 2))}}
    return history, models, images, (4, 4), tsne


@pytest.mark.parametrize("learnt", [True, False])
def test_autoencoder_figure(learnt):
    history, models, images, shape, tsne = autoencoder_results(learnt)
    fig = autoencoder_figure(history, models, images, shape, tsne, "digits", note="quick")
    assert letters(fig) == list("abcde")
    # No empty cell: the lettered panels cover the whole grid.
    covered = set()
    for ax in fig.axes:
        if ax.get_title(loc="left"):
            spec = ax.get_subplotspec()
            top = spec.get_topmost_subplotspec()
            rows, cols = top.rowspan, top.colspan
            covered |= {(r, c) for r in rows for c in cols}
    grid = fig.axes[0].get_subplotspec().get_gridspec()
    assert covered == {(r, c) for r in range(grid.nrows) for c in range(grid.ncols)}
    for ax in fig.axes[:2]:
        assert ax.get_yscale() == "log" and len(ax.get_yticks()) >= 3
    note = fig._supxlabel.get_text()
    assert note.startswith("quick")
    assert ("mean-image plateau" in note) is not learnt


def test_classification_and_alpha_sweep_figures():
    models = [spec.name for spec in classification.MODELS]
    history = [{"epoch": e, "test_error": list(RNG.uniform(2, 60, len(models)))}
               for e in (0.0, 0.5, 1.0)]
    fig = classification_figure(history, models, {"BP": 2.2}, "digits")
    ax = fig.axes[0]
    assert letters(fig) == ["a"]
    # A long source of the published numbers is wrapped (a line as wide as the figure
    # would squeeze the axes), and a given title replaces Fig. 4a's.
    long = classification_figure(history, models, {"BP": 1.83}, "mnist-5k", "x " * 80,
                                 title="another network")
    [note] = [t.get_text() for t in long.axes[0].texts if t.get_text().startswith("x ")]
    assert note.count("\n") == 1 and note.endswith("BP 1.83 %")
    assert long.axes[0].get_title(loc="left").endswith("another network")
    colours_drawn = [line.get_color() for line in ax.get_lines()]
    assert len(set(colours_drawn)) == len(models)
    assert not any("times" in ax.yaxis.get_major_formatter()(v) for v in ax.get_yticks())
    layers = {name: {"shape": [10, 20], "angle": {"ndi": [1, 2], "circuit": [1, 2]},
                     "relative_error": {"ndi": [0.1, 0.2], "circuit": [0.1, 0.2]}}
              for name in ("contracting", "expanding")}
    assert letters(alpha_sweep_figure([0.01, 0.1], layers)) == ["a", "b"]


def test_running_quantiles_and_input_variation():
    values = RNG.normal(size=50)
    centres, (q25, q50, q75) = running_quantiles(values, 7)
    assert centres[0] == 3 and centres.size == 44
    np.testing.assert_allclose(q50, [np.median(values[i:i + 7]) for i in range(44)])
    assert np.all(q25 <= q50) and np.all(q50 <= q75)
    values[10] = np.nan
    assert np.all(np.isfinite(running_quantiles(values, 7)[1]))
    inputs = RNG.uniform(size=(5, 9))
    assert input_variation(inputs, inputs) == pytest.approx(1.0)
    assert input_variation(inputs, np.tile(inputs[0], (5, 1))) < 1e-12
    assert 0.0 < PLATEAU_VARIATION < 1.0


def test_curves_and_errors_share_the_update_axis():
    """Errors are after i updates (from 0), curves during update j (from 1): a curve's
    first point sits at update 1, the error's first at 0, in both kinds of panel."""
    styles = {"DI": lambda layer, points, order: {"color": "C0", "zorder": 2}}
    fig, axes = plt.subplots(1, 3)
    plot_curves(axes[0], {"DI": np.linspace(1.0, 0.1, 6)}, styles)
    plot_layer_curves(axes[1], {"DI": np.arange(5.0)[None]}, styles,
                      Panel("angle", "angle_ndi", "deg", frozenset({"di"})))
    plot_layer_curves(axes[2], {"DI": np.arange(300.0)[None]}, styles,
                      Panel("angle", "angle_ndi", "deg", frozenset({"di"}), median=True))
    assert list(axes[0].lines[0].get_xdata()) == [0, 1, 2, 3, 4, 5]
    assert list(axes[1].lines[0].get_xdata()) == [1, 2, 3, 4, 5]
    window = axes[2].lines[0].get_xdata()
    assert window[0] == pytest.approx(1 + (10 - 1) / 2)  # a window of 10 from update 1
    assert axes[0].get_xlabel() == axes[1].get_xlabel() == "updates"
    plt.close(fig)
