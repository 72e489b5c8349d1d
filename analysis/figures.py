"""Figures from plain arrays (no pyplot state: every function returns a Figure).

Colours, line styles, panel letters and log-axis ticks come from
`dinv.analysis.style`: a model has one colour in every figure, and the panels
of a figure are lettered a, b, c, ... (the paper's panel in the title).
"""

import textwrap
from dataclasses import dataclass

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from dinv.analysis.metrics import input_variation, running_quantiles
from dinv.analysis.style import (
    MODEL_COLOURS,
    SPARE_COLOURS,
    colours,
    is_simulated,
    line_style,
    log_ticks,
    panel_titles,
    value_ticks,
)

PALETTE = tuple(MODEL_COLOURS.values()) + SPARE_COLOURS
"""Colours in a fixed order, for groups that are not models (e.g. the cells of a
sweep); models take theirs from `dinv.analysis.style.colours`."""


def mark_unsettled(fig, settling):
    """Note on ``fig`` (in red, at the top) every model whose settles fell short.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
    settling : dict or None
        Model -> ``{'settles', 'unsettled', 'tolerance', 'worst_residual',
        'unstable', ...}`` (`dinv.experiments.settle_stats`).

    Returns
    -------
    matplotlib.figure.Figure
        ``fig``, marked when any settle fell short.
    """
    short = {name: entry for name, entry in (settling or {}).items() if entry["unsettled"]}
    if not short:
        return fig
    tolerance = next(iter(short.values()))["tolerance"]
    notes = []
    for name, e in short.items():
        unstable = f", {e['unstable']} unstable" if e["unstable"] else ""
        notes.append(f"{name}: {e['unsettled']} of {e['settles']} settles unsettled "
                     f"(worst residual {e['worst_residual']:.2g}{unstable})")
    text = (f"Circuits that did not settle (residual > settle_tol={tolerance:g}): "
            + "; ".join(notes))
    fig.suptitle("\n".join(textwrap.wrap(text, 160)), color="tab:red", fontsize=8)
    return fig



@dataclass(frozen=True)
class Panel:
    """One panel of per-layer curves in a regression figure.

    Attributes
    ----------
    title : str
        Title without the panel letter (the figure adds it).
    key : str
        Curve in the results' ``curves``.
    ylabel : str
    rules : frozenset of str
        Rules of the models shown.
    log : bool
        Log y axis; values <= 0 (an angle of exactly 0) are drawn at ``floor``.
    floor : float
        Lowest value drawn on a log axis (the default: the resolution of an
        angle from arccos in float64, about 1e-6 degrees).
    median : bool
        A running median with its interquartile band instead of every sample
        (for per-sample traces that are mostly noise).
    zero_line : bool
        A thin line at 0 (for eigenvalues).
    """

    title: str
    key: str
    ylabel: str
    rules: frozenset
    log: bool = False
    floor: float = 1e-6
    median: bool = False
    zero_line: bool = False


def median_window(samples):
    """Samples per window of a running median: a thirtieth of the trace, at least 5."""
    return max(5, int(samples) // 30)


def plot_curves(ax, curves, styles, log=False):
    """Plot named curves (name -> 1-D array) against the updates done.

    Value i is the one after i updates (0: before training), as the
    regressions' ``error`` (``results.json``'s ``updates['error']``).
    ``styles``: name -> keyword arguments of ``Axes.plot`` without markers
    (`dinv.analysis.style.line_style`); markers are placed here.
    """
    for order, (name, values) in enumerate(curves.items()):
        values = np.asarray(values, dtype=float)
        ax.plot(np.arange(values.size), values, **styles[name](0, values.size, order))
    if log:
        ax.set_yscale("log")
        log_ticks(ax)
    ax.set_xlabel("updates")


def plot_layer_curves(ax, curves, styles, panel):
    """Plot per-layer curves (model -> array (layers, iterations)) of one `Panel`.

    Value j is the one of update j + 1 (``results.json``'s ``updates['curves']``),
    so the curves share the x axis of `plot_curves`' errors. Layer 1 is drawn solid
    (closed forms) or dashed (simulated), layer 2 dotted or dash-dotted
    (`dinv.analysis.style.LINE_STYLES`).
    """
    order = 0
    for name, layers in curves.items():
        for j, values in enumerate(np.atleast_2d(np.asarray(layers, dtype=float))):
            if not np.any(np.isfinite(values)):
                continue
            if panel.log:
                values = np.where(values > panel.floor, values, panel.floor)
            style = styles[name](j, values.size, order)
            order += 1
            if panel.median:
                _plot_median(ax, values, style)
            else:
                ax.plot(np.arange(1, values.size + 1), values, **style)
    if panel.log:
        ax.set_yscale("log")
        log_ticks(ax)
    if panel.zero_line:
        ax.axhline(0.0, color="k", lw=0.5)
    ax.set_xlabel("updates")
    ax.set_ylabel(panel.ylabel)


def _plot_median(ax, values, style):
    """A running median of ``values`` with its 25-75 % band."""
    centres, (q25, q50, q75) = running_quantiles(values, median_window(values.size))
    centres = centres + 1  # value j belongs to update j + 1
    points = centres.size
    every = style.get("markevery")
    if every:
        style = {**style, "markevery": (every[0] % max(points // 7, 1), max(points // 7, 1))}
    ax.fill_between(centres, q25, q75, color=style["color"], alpha=0.15, lw=0,
                    zorder=style["zorder"] - 1)
    ax.plot(centres, q50, **style)


def _model_styles(names, rules):
    """Name -> ``style(layer, points, order)`` keyword arguments for every model."""
    colour = colours(names)

    def styler(name):
        def style(layer, points, order):
            label = name if layer == 0 else f"{name}, layer {layer + 1}"
            return line_style(label, colour[name], is_simulated(name, rules.get(name)),
                              layer, points, order)
        return style

    return {name: styler(name) for name in names}


def _legend_handles(names, rules, layers):
    """Legend of a figure: one entry per model, and the line style of layer 2."""
    colour = colours(names)
    handles = [Line2D([], [], **line_style(name, colour[name],
                                            is_simulated(name, rules.get(name)), 0, 7, i))
               for i, name in enumerate(names)]
    if layers > 1:
        handles += [Line2D([], [], **line_style(f"layer 2, {kind}", "0.4", sim, 1))
                    for sim, kind in ((False, "closed form"), (True, "simulated"))]
    return handles


def final_error_bars(ax, nmse_curves, colour):
    """Horizontal bars of every model's final / initial error (log axis); a model
    trained on fewer updates than the others (spiking DI on a subset) says so."""
    names = list(nmse_curves)
    ratio = [np.asarray(nmse_curves[n], dtype=float)[-1] / np.asarray(nmse_curves[n])[0]
             for n in names]
    longest = max(len(nmse_curves[n]) for n in names)
    labels = [n if len(nmse_curves[n]) == longest else f"{n} ({len(nmse_curves[n]) - 1} updates)"
              for n in names]
    ax.barh(labels, ratio, color=[colour[n] for n in names])
    ax.set_xscale("log")
    ax.invert_yaxis()
    ax.tick_params(axis="y", labelsize=8)
    ax.set_xlabel("final / initial error")
    log_ticks(ax, "x")


def regression_figure(nmse_curves, curves, rules, panels, nmse_title):
    """NMSE, four panels of per-layer curves, and the final error of every model.

    Parameters
    ----------
    nmse_curves : dict of str to ndarray
        NMSE per model (Fig. 3a, b or g).
    curves : dict
        Curve key -> model -> array (layers, iterations).
    rules : dict of str to str
        Rule of every model.
    panels : sequence of Panel
        Up to four panels: which curve, for models of which rules.
    nmse_title : str
        Title of the NMSE panel (without its letter).

    Returns
    -------
    matplotlib.figure.Figure
        Panels lettered a-f; one legend for the figure, below the panels.
    """
    fig = Figure(figsize=(15, 9.5), layout="constrained")
    axes = fig.subplots(2, 3).ravel()
    names = list(nmse_curves)
    styles = _model_styles(names, rules)
    plot_curves(axes[0], nmse_curves, styles, log=True)
    axes[0].set_ylabel("NMSE")
    titles = [nmse_title]
    for ax, panel in zip(axes[1:5], panels):
        shown = {m: v for m, v in curves[panel.key].items() if rules[m] in panel.rules}
        plot_layer_curves(ax, shown, styles, panel)
        titles.append(panel.title if not panel.median else
                      f"{panel.title}\nrunning median of "
                      f"{median_window(_samples(shown))} samples, band: 25-75 %")
    final_error_bars(axes[5], nmse_curves, colours(names))
    panel_titles(axes, titles + ["final / initial error"])
    layers = max((np.atleast_2d(np.asarray(v, dtype=float)).shape[0]
                  for c in curves.values() for v in c.values()), default=1)
    handles = _legend_handles(names, rules, layers)
    fig.legend(handles=handles, loc="outside lower center", fontsize=8, frameon=False,
               ncol=int(np.ceil(len(handles) / np.ceil(len(handles) / 8))))
    return fig


def _samples(curves):
    """Length of the traces of a dict model -> array (layers, iterations)."""
    return max((np.atleast_2d(np.asarray(v, dtype=float)).shape[1] for v in curves.values()),
               default=0)


LAYER_TYPE_COLOURS = {"contracting": "#1f77b4", "expanding": "#ff7f0e", "square": "#2ca02c"}
"""Colours of the alpha sweep's layer shapes (not models)."""


def alpha_sweep_figure(alphas, layers):
    """Angle and relative error to W^+ delta against alpha (Suppl. Fig. 1).

    Parameters
    ----------
    alphas : array_like
    layers : dict
        Layer type -> {'shape', 'angle', 'relative_error'}, the last two
        dicts with 'ndi' (closed form) and 'circuit' curves, one value per alpha.

    Returns
    -------
    matplotlib.figure.Figure
    """
    fig = Figure(figsize=(11, 4.4), layout="constrained")
    axes = fig.subplots(1, 2)
    spare = colours(layers)
    for name, layer in layers.items():
        colour = LAYER_TYPE_COLOURS.get(name, spare[name])
        label = f"{name} {tuple(layer['shape'])}"
        for ax, key in zip(axes, ("angle", "relative_error")):
            ax.loglog(alphas, np.maximum(layer[key]["ndi"], 1e-16), color=colour, lw=2.6,
                      alpha=0.5, label=f"{label}, closed form (Eq. 10)")
            ax.loglog(alphas, np.maximum(layer[key]["circuit"], 1e-16), color=colour,
                      ls="--", lw=1.1, marker="o", ms=3, label=f"{label}, Brian2 circuit")
    axes[0].set_ylabel("angle to W^+ delta (deg)")
    axes[1].set_ylabel("|delta - W^+ delta| / |W^+ delta|")
    for ax in axes:
        ax.set_xlabel("alpha")
        log_ticks(ax, "x")
        log_ticks(ax, "y")
    axes[0].legend(fontsize=7)
    panel_titles(axes, ["angle of the inversion to the pseudoinverse (B = -W^T)",
                        "relative error of the inversion"])
    return fig


def timescales_figure(pair, chains, tolerance, pid=None):
    """Convergence of a layer pair against tau_controller / tau_system, of deep
    chains against per-layer hierarchies and, with ``pid``, of the layer pair
    under PID controllers against K_p and K_d.

    Parameters
    ----------
    pair : list of dict
        Per ratio: ``ratio``, ``time``, ``rate``, ``predicted_rate``,
        ``overshoot``, ``abscissa``, ``trace_t``, ``trace_error``.
    chains : dict
        ``'architecture, hierarchy'`` -> {``time``, ``overshoot``}.
    tolerance : float
        Convergence tolerance (for the labels).
    pid : dict or None
        The PID part (`dinv.experiments.timescales`): ``integral`` and ``grid``
        (per gain pair ``kp``, ``kd``, ``time``, ``overshoot``,
        ``predicted_rate``, ``step_radius``, ``diverged``); two more panels.

    Returns
    -------
    matplotlib.figure.Figure
        Panels lettered a-d (a-f with PID) in reading order.
    """
    with_pid = bool(pid and pid.get("grid"))
    fig = Figure(figsize=(18 if with_pid else 12, 8.5), layout="constrained")
    grid = fig.subplots(2, 3 if with_pid else 2)
    (trace, time), (decay, chain) = grid[0, :2], grid[1, :2]
    titles = {trace: "layer pair: error to the steady state",
              time: "layer pair: convergence time",
              decay: "layer pair: decay rate and overshoot",
              chain: "deep chains: per-layer time-constant hierarchies"}
    _pair_traces(trace, pair, tolerance)
    _pair_times(time, pair, tolerance)
    _pair_rates(decay, pair)
    _chain_bars(chain, chains, tolerance)
    if with_pid:
        titles.update(_pid_panels(grid[0, 2], grid[1, 2], pid, tolerance))
    panel_titles(grid.ravel(), [titles[ax] for ax in grid.ravel()], fontsize=9)
    return fig


def _pair_traces(ax, pair, tolerance):
    """Error to the steady state against time, one line per ratio."""
    for p in pair:
        ax.semilogy(p["trace_t"], np.maximum(p["trace_error"], 1e-16),
                    label=f"tau_c/tau_s = {p['ratio']:g}")
    ax.axhline(tolerance, color="k", lw=0.5, ls=":", label=f"tolerance {tolerance:g}")
    ax.set_xlabel("time (tau_system)")
    ax.set_ylabel("|delta(t) - delta*| / |delta*|")
    log_ticks(ax)
    ax.legend(fontsize=7)


def _pair_times(ax, pair, tolerance):
    """Measured convergence time and the Jacobian's prediction against the ratio."""
    ratios = np.array([p["ratio"] for p in pair])
    predicted = np.log(1.0 / tolerance) / np.array([p["predicted_rate"] for p in pair])
    ax.loglog(ratios, [p["time"] for p in pair], "o-", label=f"measured (to {tolerance:g})")
    ax.loglog(ratios, np.where(predicted > 0, predicted, np.nan), "s--",
              label="ln(1/tol) / rate from the Jacobian")
    ax.set_xlabel("tau_controller / tau_system")
    ax.set_ylabel("convergence time (tau_system)")
    value_ticks(ax, ratios)
    log_ticks(ax, "y")
    ax.legend(fontsize=7)


def _pair_rates(ax, pair):
    """Decay rates (log axis) and the overshoot (twin axis) against the ratio."""
    ratios = np.array([p["ratio"] for p in pair])
    ax.loglog(ratios, [p["rate"] for p in pair], "o-", label="measured decay rate")
    ax.loglog(ratios, [p["predicted_rate"] for p in pair], "s--", label="-max Re eig(J)")
    over = ax.twinx()
    over.plot(ratios, [p["overshoot"] for p in pair], "^:", color="tab:red",
              label="overshoot (right axis)")
    over.set_ylabel("overshoot of |delta(t)| / |delta*|", color="tab:red")
    ax.set_xlabel("tau_controller / tau_system")
    ax.set_ylabel("decay rate (1 / tau_system)")
    value_ticks(ax, ratios)
    log_ticks(ax, "y")
    handles = ax.get_legend_handles_labels()[0] + over.get_legend_handles_labels()[0]
    ax.legend(handles=handles, fontsize=7)


ARCHITECTURE_COLOURS = {"sequential": "#1f77b4", "repeat": "#ff7f0e", "single-loop": "#2ca02c"}


def _chain_bars(ax, chains, tolerance):
    """Vertical bars of the chains' convergence times, grouped by hierarchy (an
    interrupted run may have none: the panel says so)."""
    if not chains:
        ax.text(0.5, 0.5, "no chain settled", ha="center", va="center",
                transform=ax.transAxes, color="0.4")
        ax.set_xticks([])
        return
    parts = [tuple(key.split(", ", 1)) if ", " in key else (key, "") for key in chains]
    architectures = list(dict.fromkeys(a for a, _ in parts))
    hierarchies = list(dict.fromkeys(h for _, h in parts))
    width = 0.8 / len(architectures)
    spare = colours(architectures)
    for i, architecture in enumerate(architectures):
        x = [hierarchies.index(h) + (i - (len(architectures) - 1) / 2) * width
             for a, h in parts if a == architecture]
        times = [chains[key]["time"] for key, (a, _) in zip(chains, parts) if a == architecture]
        ax.bar(x, times, width, label=architecture,
               color=ARCHITECTURE_COLOURS.get(architecture, spare[architecture]))
    ax.set_xticks(range(len(hierarchies)),
                  [textwrap.fill(f"controllers {h}", 24) for h in hierarchies], fontsize=8)
    ax.set_ylabel(f"time until delta_1 stays within {tolerance:g} (tau_system)")
    ax.legend(fontsize=8)


def _pid_panels(ax_rate, ax_over, pid, tolerance):
    """Heatmaps over (K_p, K_d): the decay rate (text: time to ``tolerance``) and
    the overshoot; X marks gain pairs whose Euler circuit diverges (step radius
    >= 1). Returns the two panels' titles."""
    kps = sorted({p["kp"] for p in pid["grid"]})
    kds = sorted({p["kd"] for p in pid["grid"]})
    time = np.full((len(kps), len(kds)), np.nan)
    over, rate = np.full_like(time, np.nan), np.full_like(time, np.nan)
    unstable = np.zeros(time.shape, dtype=bool)
    for p in pid["grid"]:
        i, j = kps.index(p["kp"]), kds.index(p["kd"])
        time[i, j], over[i, j], rate[i, j] = p["time"], p["overshoot"], p["predicted_rate"]
        unstable[i, j] = p["diverged"] is not None or p["step_radius"] >= 1
    base = pid["integral"]
    _heatmap(ax_rate, rate, unstable, time, kps, kds,
             "decay rate from the Euler step (1 / tau_system)", "{1:.3f}\n{0:.3g} tau_s")
    _heatmap(ax_over, over, unstable, over, kps, kds, "overshoot", "{0:.2f}")
    return {ax_rate: f"PID (Eq. 7), tau_c = tau_s, tau_d = {pid['filter_ratio']:g} tau_c\n"
                     f"colour, first line: decay rate; second line: time to {tolerance:g}\n"
                     f"integral controller: {base['time']:.3g} tau_s; X: the Euler circuit "
                     "diverges",
            ax_over: f"PID: overshoot of |delta(t)| / |delta*| (integral controller: "
                     f"{base['overshoot']:.2g})"}


def _heatmap(ax, colour_values, unstable, text_values, kps, kds, label, fmt):
    """One PID heatmap with its colour bar and a readable text in every cell."""
    image = ax.imshow(np.where(unstable, np.nan, colour_values), origin="lower",
                      aspect="auto", cmap="viridis")
    ax.figure.colorbar(image, ax=ax, label=label)
    for i in range(len(kps)):
        for j in range(len(kds)):
            if unstable[i, j]:
                ax.text(j, i, "X", ha="center", va="center", fontsize=8, color="k")
                continue
            red, green, blue, _ = image.cmap(image.norm(colour_values[i, j]))
            dark = 0.299 * red + 0.587 * green + 0.114 * blue < 0.5
            ax.text(j, i, fmt.format(text_values[i, j], colour_values[i, j]), ha="center",
                    va="center", fontsize=7, color="w" if dark else "k")
    ax.set_xticks(range(len(kds)), [f"{k:g}" for k in kds])
    ax.set_yticks(range(len(kps)), [f"{k:g}" for k in kps])
    ax.set_xlabel("K_d (tau_controller)")
    ax.set_ylabel("K_p")


def _history(history, metric, models):
    """(epochs, model -> values) of one metric from a run's evaluation history (values
    keyed by model name; an older results.json lists them in the order of ``models``)."""
    epochs = np.array([h["epoch"] for h in history], dtype=float)
    values = np.array([[h[metric][name] for name in models] if isinstance(h[metric], dict)
                       else h[metric] for h in history], dtype=float)
    return epochs, {name: values[:, k] for k, name in enumerate(models)}


def classification_figure(history, models, paper, dataset,
                          reference="paper, MNIST after 10 epochs", title=None, extra=None):
    """Fig. 4a: test error (%) of every model against epochs.

    Parameters
    ----------
    history : list of dict
        Evaluations: ``'epoch'`` and ``'test_error'`` (model name -> value).
    models : list of str
    paper : dict
        Published final test errors by rule name: lines on MNIST, a note on
        other data sets.
    dataset : str
        Name shown in the title.
    reference : str
        Where ``paper``'s numbers come from (the note says it).
    title : str or None
        Panel title (None: Fig. 4a's, with ``dataset``).
    extra : dict or None
        More curves, name -> (epochs, test errors), e.g. the spiking DI
        models' shorter passes (markers on their evaluations).
    """
    fig = Figure(figsize=(7.5, 4.8), layout="constrained")
    ax = fig.add_subplot()
    epochs, curves = _history(history, "test_error", models)
    extra = extra or {}
    colour = colours(list(models) + list(extra))
    for order, (name, values) in enumerate(curves.items()):
        # Simulated DI: thin and dashed on its closed form NDI (thick, pale).
        style = line_style(f"{name}: {values[-1]:.2f} %", colour[name], is_simulated(name),
                           0, values.size, order)
        ax.plot(epochs, values, **style)
    for name, (x, values) in extra.items():
        ax.plot(x, values, ".-", color=colour[name], lw=1,
                label=f"{name}: {values[-1]:.2f} % after {x[-1]:.2g} epochs")
    _paper_errors(ax, paper, dataset, reference)
    ax.set_yscale("log")
    log_ticks(ax)
    ax.set_xlabel("epoch")
    ax.set_ylabel("test error (%)")
    panel_titles([ax], [title or f"classification (paper Fig. 4a), {dataset}: test error"])
    ax.legend(fontsize=8, frameon=False)
    return fig


def _paper_errors(ax, paper, dataset, reference):
    """Published final errors: lines on MNIST, a note saying where they come from otherwise."""
    by_value: dict[float, list[str]] = {}
    for rule, value in paper.items():
        by_value.setdefault(value, []).append(rule)
    if dataset == "mnist":
        for value, rules in by_value.items():
            ax.axhline(value, color="0.6", lw=0.6, ls=":")
            ax.annotate(f"paper {'/'.join(rules)}", (1.0, value),
                        xycoords=("axes fraction", "data"), fontsize=7, color="0.4",
                        va="center", xytext=(2, 0), textcoords="offset points")
        return
    summary = ", ".join(f"{'/'.join(rules)} {value:g} %" for value, rules in by_value.items())
    ax.text(0.02, 0.02, "\n".join(textwrap.wrap(f"{reference}: {summary}", 100)), fontsize=7,
            color="0.4", transform=ax.transAxes)


def autoencoder_figure(history, models, images, image_shape, tsne, dataset, note=None):
    """Fig. 4b-d: training error, reconstructions and t-SNE maps of the code.

    Parameters
    ----------
    history : list of dict
        Evaluations with ``'epoch'`` and ``'train_error'`` per model.
    models : list of str
        Model names ending in their weight init ('uniform' or 'orthogonal').
    images : dict
        ``'input'`` (k, pixels) and, per model, its reconstructions.
    image_shape : tuple of int
    tsne : dict
        ``'labels'`` (N,) and ``'maps'``: model -> (N, 2).
    dataset : str
    note : str or None
        A line under the figure (e.g. that a quick run is a smoke test). The
        figure adds one naming the models whose reconstructions barely depend
        on the input (`PLATEAU_VARIATION`).

    Returns
    -------
    matplotlib.figure.Figure
        Left column: error curves of the two inits; middle: reconstructions;
        right: the t-SNE maps (one above the other).
    """
    maps = tsne["maps"]
    fig = Figure(figsize=(15 if maps else 10.5, 8.5), layout="constrained")
    grid = fig.add_gridspec(2, 3 if maps else 2,
                            width_ratios=(1.0, 1.25, 0.95) if maps else (1.0, 1.25))
    axes = [fig.add_subplot(grid[0, 0]), fig.add_subplot(grid[1, 0])]
    titles = [f"training error, {init} init (paper Fig. 4b; {dataset})"
              for init in ("uniform", "orthogonal")]
    _autoencoder_errors(axes, history, models)
    axes.append(fig.add_subplot(grid[:, 1]))
    titles.append("test images and reconstructions (Fig. 4c)")
    _reconstructions(axes[-1], images, models, image_shape)
    if maps:
        cells = grid[:, 2].subgridspec(len(maps), 1)
        for k, (name, points) in enumerate(maps.items()):
            axes.append(fig.add_subplot(cells[k]))
            titles.append(f"t-SNE of the code (Fig. 4d): {name}")
            scatter = _tsne_map(axes[-1], points, tsne["labels"])
        fig.colorbar(scatter, ax=axes[3:], ticks=range(10), label="label", shrink=0.6)
    panel_titles(axes, titles)
    notes = [note] if note else []
    flat = [name for name in models if input_variation(images["input"], images[name])
            < PLATEAU_VARIATION]
    if flat:
        notes.append(f"Reconstructions that barely depend on the input (spread across images "
                     f"< {PLATEAU_VARIATION:g} of the inputs': the mean-image plateau, not yet "
                     f"learnt): {', '.join(flat)}")
    if notes:
        width = int(fig.get_figwidth() * 13)  # characters of 8 pt per line
        fig.supxlabel("\n".join(textwrap.fill(n, width) for n in notes), x=0.01, ha="left",
                      fontsize=8, color="tab:red")
    return fig


PLATEAU_VARIATION = 0.25
"""Below this `input_variation`, an autoencoder's reconstructions count as one
image for every input (the figure says so)."""


def _autoencoder_errors(axes, history, models):
    """Training error against epochs: uniform init on ``axes[0]``, orthogonal on ``axes[1]``."""
    epochs, curves = _history(history, "train_error", models)
    colour = colours([m.rsplit(" ", 1)[0] for m in models])
    for ax, init in zip(axes, ("uniform", "orthogonal")):
        for order, (name, values) in enumerate(curves.items()):
            if name.endswith(init):
                rule = name.rsplit(" ", 1)[0]
                ax.plot(epochs, values, **line_style(f"{rule}: {values[-1]:.3g}", colour[rule],
                                                     is_simulated(rule), 0, values.size,
                                                     order))
        ax.set_yscale("log")
        log_ticks(ax)
        ax.set_xlabel("epoch")
        ax.set_ylabel("training error (squared error per image)")
        ax.legend(fontsize=8, frameon=False)


def _reconstructions(ax, images, models, image_shape):
    """Test images (top row) and every model's reconstructions of them, one row each."""
    rows = ["input"] + list(models)
    inputs = np.asarray(images["input"])
    h, w = image_shape
    canvas = np.full((len(rows) * (h + 1), inputs.shape[0] * (w + 1)), np.nan)
    for r, name in enumerate(rows):
        for c, image in enumerate(np.asarray(images[name])):
            canvas[r * (h + 1):r * (h + 1) + h, c * (w + 1):c * (w + 1) + w] = \
                np.clip(image.reshape(h, w), 0.0, 1.0)
    cmap = matplotlib.colormaps["gray_r"].with_extremes(bad="#c6dbef")  # gaps: light blue
    ax.imshow(canvas, cmap=cmap, vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_yticks([r * (h + 1) + h / 2 for r in range(len(rows))], rows, fontsize=8)
    ax.set_xticks([])


def _tsne_map(ax, points, labels):
    """A t-SNE map coloured by label; returns the scatter (for a colour bar)."""
    points = np.asarray(points)
    scatter = ax.scatter(points[:, 0], points[:, 1], c=np.asarray(labels), cmap="tab10",
                         s=4, vmin=-0.5, vmax=9.5)
    ax.set_xticks([])
    ax.set_yticks([])
    return scatter


SPIKING_MARKERS = {"scn": "o", "lif": "s", "qif": "^", "adex": "D", "izhikevich": "v"}
SPIKING_STYLES = {"scn": "-", "lif": "--", "qif": "-.", "adex": ":", "izhikevich": "-."}
SPIKING_COLOURS = {"scn": "tab:blue", "lif": "tab:red", "qif": "tab:green",
                   "adex": "tab:purple", "izhikevich": "tab:brown"}


def _records(records, **match):
    rows = [r for r in records if all(r.get(k) == v for k, v in match.items())]
    return sorted(rows, key=lambda r: r["neurons_per_dim"])


def spiking_inversion_figure(scaling, slopes, tau_sweep, duration_sweep, silencing):
    """The spiking study (`dinv.experiments.spiking_inversion`), from its results.

    Panels: (a) error of the time-averaged readout (angle, solid) and the
    moment-to-moment RMS error (dotted) against neurons per dimension on the
    contracting case, log-log, with the fitted slopes in the legend; (b) the
    relative error of every case against N; (c) against the readout time
    constant and (d) the simulated time (contracting case); (e) mean (solid)
    and max (dashed) firing rates against N; (f) the angle with and without
    silencing.

    Parameters
    ----------
    scaling : list of dict
        Records with ``population``, ``case``, ``neurons_per_dim``,
        ``angle_deg``, ``rel_error``, ``rms_error``, ``mean_rate_hz``,
        ``max_rate_hz``.
    slopes : list of dict
        Per ``population`` and ``case``: fitted slopes of ``angle_deg``,
        ``rel_error`` and ``rms_error``.
    tau_sweep, duration_sweep : list of dict
        Records with ``readout_ms`` / ``duration_tau``.
    silencing : dict
        Per model: ``intact`` and ``silenced`` records, ``fraction``.

    Returns
    -------
    matplotlib.figure.Figure
    """
    fig = Figure(figsize=(16, 9), layout="constrained")
    axes = fig.subplots(2, 3).ravel()
    models = list(dict.fromkeys(r["population"] for r in scaling))
    cases = list(dict.fromkeys(r["case"] for r in scaling))
    model_colour = {model: SPIKING_COLOURS.get(model, colour)
                    for model, colour in colours(models).items()}
    case_colour = {case: colour for case, colour in
                   zip(cases, ("tab:blue", "tab:orange", "tab:green", "tab:purple",
                               "tab:brown", "tab:pink", "tab:olive", "tab:cyan"))}
    slope = {(s["population"], s["case"]): s for s in slopes}

    def fmt(value):
        return "n/a" if value is None else f"{value:.2f}"

    ax = axes[0]
    for model in models:
        rows = _records(scaling, population=model, case="contracting")
        if not rows:
            continue
        n = [r["neurons_per_dim"] for r in rows]
        s = slope.get((model, "contracting"), {})
        ax.loglog(n, [r["angle_deg"] for r in rows], SPIKING_MARKERS[model] + "-",
                  color=model_colour[model],
                  label=f"{model} angle, slope {fmt(s.get('angle_deg'))}")
        ax.loglog(n, [np.degrees(r["rms_error"]) for r in rows], SPIKING_MARKERS[model] + ":",
                  color=model_colour[model], mfc="none",
                  label=f"{model} RMS (as deg), slope {fmt(s.get('rms_error'))}")
        if s.get("angle_deg") is not None and len(n) > 1:
            fit = np.polyfit(np.log(n), np.log([r["angle_deg"] for r in rows]), 1)
            ax.loglog(n, np.exp(np.polyval(fit, np.log(n))), color=model_colour[model],
                      lw=0.6, alpha=0.6)
    ax.set_xlabel("neurons per dimension N")
    ax.set_ylabel("angle to Eq. (10) (deg)")
    ax.set_title("a  contracting pair: error vs N", loc="left", fontsize=10)
    ax = axes[1]
    for model in models:
        for case in cases:
            rows = _records(scaling, population=model, case=case)
            if not rows:
                continue
            s = slope.get((model, case), {})
            label = f"{model} {case}" + (f" ({fmt(s.get('rel_error'))})" if s else "")
            ax.loglog([r["neurons_per_dim"] for r in rows], [r["rel_error"] for r in rows],
                      SPIKING_MARKERS[model] + SPIKING_STYLES[model], color=case_colour[case],
                      label=label)
    ax.set_xlabel("neurons per dimension N")
    ax.set_ylabel("relative error of the averaged readout")
    ax.set_title("b  every case (slope)", loc="left", fontsize=10)
    for ax, records, key, xlabel, title in (
            (axes[2], tau_sweep, "readout_ms", "readout time constant (ms)",
             "c  readout time constant (contracting)"),
            (axes[3], duration_sweep, "duration_tau", "simulated time (tau)",
             "d  simulated time (contracting)")):
        for model in models:
            rows = sorted([r for r in records if r["population"] == model],
                          key=lambda r: r[key])
            if not rows:
                continue
            x = [r[key] for r in rows]
            ax.loglog(x, [r["rel_error"] for r in rows], SPIKING_MARKERS[model] + "-",
                      color=model_colour[model],
                      label=f"{model} averaged (N={rows[0]['neurons_per_dim']})")
            ax.loglog(x, [r["rms_error"] for r in rows], SPIKING_MARKERS[model] + ":",
                      color=model_colour[model], mfc="none", label=f"{model} RMS")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("relative error")
        ax.set_title(title, loc="left", fontsize=10)
    ax = axes[4]
    for model in models:
        rows = _records(scaling, population=model, case="contracting")
        if rows:
            n = [r["neurons_per_dim"] for r in rows]
            ax.semilogx(n, [r["mean_rate_hz"] for r in rows], SPIKING_MARKERS[model] + "-",
                        color=model_colour[model], label=f"{model} mean")
            ax.semilogx(n, [r["max_rate_hz"] for r in rows], SPIKING_MARKERS[model] + "--",
                        color=model_colour[model], mfc="none", label=f"{model} max")
    ax.set_xlabel("neurons per dimension N")
    ax.set_ylabel("firing rate (Hz)")
    ax.set_title("e  firing rates (contracting)", loc="left", fontsize=10)
    ax = axes[5]
    names = [m for m in models if m in silencing]
    if names:
        slots = np.arange(len(names))
        fraction = silencing[names[0]]["fraction"]
        ax.bar(slots - 0.2, [silencing[m]["intact"]["angle_deg"] for m in names], 0.4,
               color="tab:gray", label="all neurons")
        ax.bar(slots + 0.2, [silencing[m]["silenced"]["angle_deg"] for m in names], 0.4,
               color="tab:red", label=f"{fraction:.0%} silenced")
        ax.set_xticks(slots, [f"{m} (N={silencing[m]['intact']['neurons_per_dim']})"
                          for m in names])
        ax.set_yscale("log")
    ax.set_ylabel("angle to Eq. (10) (deg)")
    ax.set_title("f  silencing (contracting)", loc="left", fontsize=10)
    sizes = sorted({r["neurons_per_dim"] for r in scaling})
    for ax, values in ((axes[0], sizes), (axes[1], sizes), (axes[4], sizes),
                       (axes[2], [r["readout_ms"] for r in tau_sweep]),
                       (axes[3], [r["duration_tau"] for r in duration_sweep])):
        if len(values):
            value_ticks(ax, values, "x")
    for ax in (axes[0], axes[1], axes[2], axes[3], axes[5]):
        if ax.get_yscale() == "log":
            log_ticks(ax, "y")
    for ax in axes:
        if ax is axes[1] and ax.get_legend_handles_labels()[0]:
            # Twelve curves: the legend goes below the panel, not over the curves.
            ax.legend(fontsize=6, ncol=2, loc="upper center", bbox_to_anchor=(0.5, -0.16))
        elif ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=6)
    return fig


SECOND_ORDER_ANGLES = (("to_gn_deg", "angle to GN (joint)"),
                       ("to_gnt_deg", "angle to the GN target"),
                       ("to_lgn_deg", "angle to layer-wise GN"),
                       ("to_bp_deg", "angle to BP"))
"""The angles of the second-order study's figure, in its columns."""


def _by_case_and_layer(records):
    """(case, layer) -> rule -> (steps, records), in order of appearance."""
    grouped: dict[tuple[str, int], dict[str, list[dict]]] = {}
    for record in records:
        key = (record["case"], record["layer"])
        grouped.setdefault(key, {}).setdefault(record["rule"], []).append(record)
    return grouped


def _second_order_lines(ax, rules, key, colour):
    """One line per rule of ``key`` against the step (closed forms thick and pale,
    simulated circuits thin and dashed)."""
    for order, (rule, group) in enumerate(rules.items()):
        steps = [r["step"] for r in group]
        values = [np.nan if r[key] is None else r[key] for r in group]
        if not np.any(np.isfinite(values)):
            continue
        ax.plot(steps, values, **line_style(rule, colour[rule], is_simulated(rule), 0,
                                            len(steps), order))


def second_order_figure(records: list[dict]) -> Figure:
    """The second-order study: every rule's angles over training, per case and layer.

    Parameters
    ----------
    records : list of dict
        The ``angles`` records of ``dinv run second-order`` (case, rule, layer,
        step and the angles in degrees).

    Returns
    -------
    matplotlib.figure.Figure
        One row per case and layer (named on the left), one column per angle
        (to GN, to the GN target, to layer-wise GN, to BP; titled on top); one
        legend below.
    """
    grouped = _by_case_and_layer(records)
    rows = max(len(grouped), 1)
    fig = Figure(figsize=(12, 1.6 * rows + 1.0), layout="constrained")
    axes = np.atleast_2d(fig.subplots(rows, len(SECOND_ORDER_ANGLES), squeeze=False))
    names = list(dict.fromkeys(r["rule"] for r in records))
    colour = colours(names)
    for row, ((case, layer), rules) in enumerate(grouped.items()):
        for column, (key, title) in enumerate(SECOND_ORDER_ANGLES):
            ax = axes[row, column]
            _second_order_lines(ax, rules, key, colour)
            if row == 0:
                ax.set_title(title, fontsize=10)
            if column == 0:
                ax.set_ylabel(f"{case}\nlayer {layer} (degrees)", fontsize=8)
            ax.tick_params(labelsize=7)
            ax.set_xlabel("updates" if row == rows - 1 else "")
    handles = [Line2D([], [], **line_style(n, colour[n], is_simulated(n), 0, 7, i))
               for i, n in enumerate(names)]
    if handles:
        fig.legend(handles=handles, loc="outside lower center", fontsize=8, frameon=False,
                   ncol=min(len(handles), 11))
    return fig


def null_share_figure(records: list[dict]) -> Figure:
    """The second-order study: the share of every rule's hidden errors in the null space
    of d a_L / d a_l over training, per case (rows) and hidden layer (columns).

    Parameters
    ----------
    records : list of dict
        The ``angles`` records of ``dinv run second-order``.

    Returns
    -------
    matplotlib.figure.Figure
    """
    grouped = _by_case_and_layer(records)
    cases = list(dict.fromkeys(case for case, _ in grouped))
    hidden = {case: sorted(layer for c, layer in grouped if c == case)[:-1] for case in cases}
    columns = max((len(v) for v in hidden.values()), default=1) or 1
    fig = Figure(figsize=(4.5 * columns + 1, 2.4 * max(len(cases), 1) + 1.2),
                 layout="constrained")
    axes = fig.subplots(max(len(cases), 1), columns, squeeze=False)
    names = list(dict.fromkeys(r["rule"] for r in records))
    colour = colours(names)
    for row, case in enumerate(cases):
        for column in range(columns):
            ax = axes[row, column]
            if column >= len(hidden[case]):
                ax.set_axis_off()
                continue
            layer = hidden[case][column]
            _second_order_lines(ax, grouped[(case, layer)], "null_share", colour)
            ax.set_ylim(-0.03, 1.03)
            ax.set_title(f"{case}, hidden layer {layer}: null-space share", loc="left",
                         fontsize=9)
            ax.set_ylabel("share of |delta_l|^2")
            ax.set_xlabel("updates")
    handles = [Line2D([], [], **line_style(n, colour[n], is_simulated(n), 0, 7, i))
               for i, n in enumerate(names) if n != "GN"]
    if handles:
        fig.legend(handles=handles, loc="outside lower center", fontsize=8, frameon=False,
                   ncol=min(len(handles), 10))
    return fig
