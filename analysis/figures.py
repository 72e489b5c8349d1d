"""Figures from plain arrays (no pyplot state: every function returns a Figure)."""

import textwrap

import numpy as np
from matplotlib.figure import Figure

PALETTE = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:brown", "tab:pink",
           "tab:olive", "tab:cyan", "k", "tab:gray", "tab:purple")


def colours(names):
    """One colour per model name, stable across the panels of a figure."""
    return {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(names)}


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


def plot_curves(ax, curves, ylabel, colour, log=False, title=None):
    """Plot named curves (dict of name to 1-D array) against iteration."""
    for name, values in curves.items():
        values = np.asarray(values, dtype=float)
        ax.plot(np.arange(values.size), values, color=colour[name], lw=1.2, label=name)
    if log:
        ax.set_yscale("log")
    ax.set_xlabel("iteration (samples)")
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title, loc="left", fontsize=10)


LAYER_STYLES = ("-", "--", ":", "-.")


def plot_layer_curves(ax, curves, ylabel, colour, title):
    """Plot per-layer curves (model -> array (layers, iterations)).

    Layer 1 is drawn solid, layer 2 dashed, and so on (as in Fig. 3h-k).
    """
    for name, layers in curves.items():
        for j, values in enumerate(np.atleast_2d(np.asarray(layers, dtype=float))):
            if not np.any(np.isfinite(values)):
                continue
            label = name if len(layers) == 1 else f"{name}, layer {j + 1}"
            ax.plot(np.arange(values.size), values, color=colour[name],
                    ls=LAYER_STYLES[j % len(LAYER_STYLES)], lw=1.0, label=label)
    ax.set_xlabel("iteration (samples)")
    ax.set_ylabel(ylabel)
    ax.set_title(title, loc="left", fontsize=10)


def regression_figure(nmse_curves, curves, rules, panels, nmse_title):
    """NMSE, five panels of per-layer curves, and the final error of every model.

    Parameters
    ----------
    nmse_curves : dict of str to ndarray
        NMSE per model (Fig. 3a, b or g).
    curves : dict
        Curve key -> model -> array (layers, iterations).
    rules : dict of str to str
        Rule of every model.
    panels : sequence of (title, key, ylabel, rules)
        Up to four panels: which curve, for models of which rules.
    nmse_title : str
        Title of the NMSE panel.

    Returns
    -------
    matplotlib.figure.Figure
    """
    fig = Figure(figsize=(15, 8), layout="constrained")
    axes = fig.subplots(2, 3).ravel()
    colour = colours(nmse_curves)
    plot_curves(axes[0], nmse_curves, "NMSE", colour, log=True, title=nmse_title)
    for ax, (title, key, ylabel, shown) in zip(axes[1:5], panels):
        plot_layer_curves(ax, {m: v for m, v in curves[key].items() if rules[m] in shown},
                          ylabel, colour, title)
        if key == "eigenvalue":
            ax.axhline(0.0, color="k", lw=0.5)
    for ax in axes[:5]:
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=6)
    names = list(nmse_curves)
    ratio = [np.asarray(nmse_curves[n], dtype=float)[-1] / np.asarray(nmse_curves[n])[0]
             for n in names]
    axes[5].barh(names, ratio, color=[colour[n] for n in names])
    axes[5].set_xscale("log")
    axes[5].invert_yaxis()
    axes[5].set_xlabel("final / initial error")
    axes[5].set_title("final error", loc="left", fontsize=10)
    return fig


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
    fig = Figure(figsize=(11, 4.2), layout="constrained")
    axes = fig.subplots(1, 2)
    colour = colours(layers)
    for name, layer in layers.items():
        label = f"{name} {tuple(layer['shape'])}"
        for ax, key in zip(axes, ("angle", "relative_error")):
            ax.loglog(alphas, np.maximum(layer[key]["ndi"], 1e-16), color=colour[name], lw=1.5,
                      label=f"{label}, closed form")
            ax.loglog(alphas, np.maximum(layer[key]["circuit"], 1e-16), color=colour[name],
                      ls="--", marker="o", ms=3, label=f"{label}, Brian2 circuit")
    axes[0].set_ylabel("angle to W^+ delta (deg)")
    axes[1].set_ylabel("|delta - W^+ delta| / |W^+ delta|")
    for ax in axes:
        ax.set_xlabel("alpha")
    axes[0].legend(fontsize=7)
    axes[0].set_title("accuracy of the inversion (B = -W^T)", loc="left", fontsize=10)
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
        Label -> {``time``, ``overshoot``}.
    tolerance : float
        Convergence tolerance (for the labels).
    pid : dict or None
        The PID part (`dinv.experiments.timescales`): ``integral`` and ``grid``
        (per gain pair ``kp``, ``kd``, ``time``, ``overshoot``,
        ``step_radius``); two more panels.

    Returns
    -------
    matplotlib.figure.Figure
    """
    with_pid = bool(pid and pid.get("grid"))
    fig = Figure(figsize=(20 if with_pid else 14, 8), layout="constrained")
    axes = fig.subplots(2, 3 if with_pid else 2)
    axes = np.concatenate([axes[:, :2].ravel(), axes[:, 2]]) if with_pid else axes.ravel()
    ratios = np.array([p["ratio"] for p in pair])
    for p in pair:
        axes[0].semilogy(p["trace_t"], np.maximum(p["trace_error"], 1e-16),
                         label=f"tau_c/tau_s = {p['ratio']:g}")
    axes[0].axhline(tolerance, color="k", lw=0.5, ls=":")
    axes[0].set_xlabel("time (tau_system)")
    axes[0].set_ylabel("|delta(t) - delta*| / |delta*|")
    axes[0].set_title("layer pair: error to the steady state", loc="left", fontsize=10)
    axes[0].legend(fontsize=7)
    measured = np.array([p["time"] for p in pair])
    predicted = np.log(1.0 / tolerance) / np.array([p["predicted_rate"] for p in pair])
    axes[1].loglog(ratios, measured, "o-", label=f"measured (to {tolerance:g})")
    axes[1].loglog(ratios, np.where(predicted > 0, predicted, np.nan), "s--",
                   label="ln(1/tol) / rate from the Jacobian")
    axes[1].set_xlabel("tau_controller / tau_system")
    axes[1].set_ylabel("convergence time (tau_system)")
    axes[1].set_title("convergence time", loc="left", fontsize=10)
    axes[1].legend(fontsize=7)
    axes[2].loglog(ratios, [p["rate"] for p in pair], "o-", label="measured decay rate")
    axes[2].loglog(ratios, [p["predicted_rate"] for p in pair], "s--",
                   label="-max Re eig(J)")
    ax2 = axes[2].twinx()
    ax2.plot(ratios, [p["overshoot"] for p in pair], "^:", color="tab:red")
    ax2.set_ylabel("overshoot", color="tab:red")
    axes[2].set_xlabel("tau_controller / tau_system")
    axes[2].set_ylabel("decay rate (1 / tau_system)")
    axes[2].set_title("decay rate and overshoot", loc="left", fontsize=10)
    axes[2].legend(fontsize=7)
    labels = list(chains)
    y = np.arange(len(labels))
    axes[3].barh(y, [chains[k]["time"] for k in labels], color="tab:blue")
    axes[3].set_yticks(y, labels, fontsize=7)
    axes[3].invert_yaxis()
    axes[3].set_xlabel(f"time until delta_1 stays within {tolerance:g} (tau_system)")
    axes[3].set_title("deep chains: per-layer time-constant hierarchies", loc="left",
                      fontsize=10)
    if with_pid:
        _pid_panels(axes[4], axes[5], pid, tolerance)
    return fig


def _pid_panels(ax_time, ax_over, pid, tolerance):
    """Heatmaps over (K_p, K_d) of the convergence time and the overshoot; X marks
    the gain pairs whose Euler circuit diverges (step radius >= 1)."""
    kps = sorted({p["kp"] for p in pid["grid"]})
    kds = sorted({p["kd"] for p in pid["grid"]})
    time = np.full((len(kps), len(kds)), np.nan)
    over, rate = np.full_like(time, np.nan), np.full_like(time, np.nan)
    unstable = np.zeros(time.shape, dtype=bool)
    for p in pid["grid"]:
        i, j = kps.index(p["kp"]), kds.index(p["kd"])
        time[i, j], over[i, j], rate[i, j] = p["time"], p["overshoot"], p["predicted_rate"]
        unstable[i, j] = p["diverged"] is not None or p["step_radius"] >= 1
    base = pid["integral"]["time"]
    for ax, values, label, fmt in (
            (ax_time, time, f"time to stay within {tolerance:g} (tau_system; integral: "
                            f"{base:.3g})", "{:.3g}\nrate {:.3f}"),
            (ax_over, over, "overshoot", "{:.2f}")):
        image = ax.imshow(np.where(unstable, np.nan, values), origin="lower", aspect="auto",
                          cmap="viridis")
        ax.figure.colorbar(image, ax=ax, label=label)
        for i in range(len(kps)):
            for j in range(len(kds)):
                text = "X" if unstable[i, j] else fmt.format(values[i, j], rate[i, j])
                ax.text(j, i, text, ha="center", va="center", fontsize=7,
                        color="k" if unstable[i, j] else "w")
        ax.set_xticks(range(len(kds)), [f"{k:g}" for k in kds])
        ax.set_yticks(range(len(kps)), [f"{k:g}" for k in kps])
        ax.set_xlabel("K_d (tau_controller)")
        ax.set_ylabel("K_p")
    ax_time.set_title(f"PID (Eq. 7), tau_c = tau_s, tau_d = {pid['filter_ratio']:g} tau_c: "
                      "convergence time and decay rate\nfrom the Euler step's spectral radius "
                      "(X: the Euler circuit diverges)", loc="left", fontsize=9)
    ax_over.set_title("PID: overshoot of |delta(t)| / |delta*|", loc="left", fontsize=9)


def _history(history, metric, models):
    """(epochs, model -> values) of one metric from a run's evaluation history (values
    keyed by model name; an older results.json lists them in the order of ``models``)."""
    epochs = np.array([h["epoch"] for h in history], dtype=float)
    values = np.array([[h[metric][name] for name in models] if isinstance(h[metric], dict)
                       else h[metric] for h in history], dtype=float)
    return epochs, {name: values[:, k] for k, name in enumerate(models)}


def classification_figure(history, models, paper, dataset):
    """Fig. 4a: test error (%) of every model against epochs.

    Parameters
    ----------
    history : list of dict
        Evaluations: ``'epoch'`` and ``'test_error'`` (model name -> value).
    models : list of str
    paper : dict
        The paper's final MNIST test errors by rule name: lines on MNIST, a
        note on other data sets.
    dataset : str
        Name shown in the title.
    """
    fig = Figure(figsize=(7.5, 4.5), layout="constrained")
    ax = fig.add_subplot()
    epochs, curves = _history(history, "test_error", models)
    colour = colours(models)
    for name, values in curves.items():
        # Simulated DI dashed: it often lies on top of its closed form NDI.
        ax.plot(epochs, values, color=colour[name], lw=1.3,
                ls="--" if name.startswith("DI") else "-",
                label=f"{name}: {values[-1]:.2f} %")
    by_value = {}
    for rule, value in paper.items():
        by_value.setdefault(value, []).append(rule)
    summary = ", ".join(f"{'/'.join(rules)} {value:g} %" for value, rules in by_value.items())
    if dataset == "mnist":
        for value, rules in by_value.items():
            ax.axhline(value, color="0.6", lw=0.6, ls=":")
            ax.annotate(f"paper {'/'.join(rules)}", (1.0, value),
                        xycoords=("axes fraction", "data"), fontsize=7, color="0.4",
                        va="center", xytext=(2, 0), textcoords="offset points")
    else:
        ax.text(0.02, 0.02, f"paper, MNIST after 10 epochs: {summary}", fontsize=7,
                color="0.4", transform=ax.transAxes)
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("test error (%)")
    ax.set_title(f"a  classification, {dataset}", loc="left", fontsize=10)
    ax.legend(fontsize=8, frameon=False)
    return fig


def autoencoder_figure(history, models, images, image_shape, tsne, dataset):
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
    """
    maps = tsne["maps"]
    fig = Figure(figsize=(13, 8.5), layout="constrained")
    grid = fig.add_gridspec(2, 2 + max(len(maps), 1), height_ratios=(1.0, 1.1))
    epochs, curves = _history(history, "train_error", models)
    colour = colours([m.rsplit(" ", 1)[0] for m in models])
    for col, init in enumerate(("uniform", "orthogonal")):
        ax = fig.add_subplot(grid[0, col])
        for name, values in curves.items():
            if name.endswith(init):
                rule = name.rsplit(" ", 1)[0]
                ax.plot(epochs, values, color=colour[rule], lw=1.3,
                        ls="--" if rule == "DI" else "-", label=f"{rule}: {values[-1]:.3g}")
        ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_ylabel("training error (squared error per image)")
        ax.set_title(f"b  {init} init ({dataset})", loc="left", fontsize=10)
        ax.legend(fontsize=8, frameon=False)
    rows = ["input"] + list(models)
    inputs = np.asarray(images["input"])
    ax = fig.add_subplot(grid[0, 2:])
    h, w = image_shape
    canvas = np.ones((len(rows) * (h + 1), inputs.shape[0] * (w + 1)))
    for r, name in enumerate(rows):
        for c, image in enumerate(np.asarray(images[name])):
            canvas[r * (h + 1):r * (h + 1) + h, c * (w + 1):c * (w + 1) + w] = \
                np.clip(image.reshape(h, w), 0.0, 1.0)
    ax.imshow(canvas, cmap="gray_r", interpolation="nearest")
    ax.set_yticks([r * (h + 1) + h / 2 for r in range(len(rows))], rows, fontsize=7)
    ax.set_xticks([])
    ax.set_title("c  test images and reconstructions", loc="left", fontsize=10)
    labels = np.asarray(tsne["labels"])
    for col, (name, points) in enumerate(maps.items()):
        ax = fig.add_subplot(grid[1, col])
        points = np.asarray(points)
        scatter = ax.scatter(points[:, 0], points[:, 1], c=labels, cmap="tab10", s=4,
                             vmin=-0.5, vmax=9.5)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(f"d  t-SNE of the code: {name}", loc="left", fontsize=10)
    if maps:
        fig.colorbar(scatter, ax=ax, ticks=range(10), label="label", shrink=0.8)
    return fig
