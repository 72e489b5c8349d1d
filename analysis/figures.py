"""Figures from plain arrays (no pyplot state: every function returns a Figure)."""

import numpy as np
from matplotlib.figure import Figure

PALETTE = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:brown", "tab:pink",
           "tab:olive", "tab:cyan", "k", "tab:gray", "tab:purple")


def colours(names):
    """One colour per model name, stable across the panels of a figure."""
    return {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(names)}


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


def regression_figure(nmse_curves, curves, dynamic, nmse_title):
    """Six panels: Fig. 3a (or b) to f, and the final error of every model.

    Parameters
    ----------
    nmse_curves : dict of str to ndarray
        NMSE per model (panel a, or b for fixed-norm updates).
    curves : dict
        ``eigenvalue``, ``angle_ndi``, ``angle_B`` and ``angle_pbp``, each a
        dict of model name to per-iteration values (inversion models only).
    dynamic : list of str
        Names of the simulated (DI) models, shown in panels c, d and f.
    nmse_title : str
        Title of the NMSE panel.

    Returns
    -------
    matplotlib.figure.Figure
    """
    fig = Figure(figsize=(15, 8), layout="constrained")
    axes = fig.subplots(2, 3).ravel()
    colour = colours(nmse_curves)

    def only_dynamic(values):
        return {k: v for k, v in values.items() if k in dynamic}

    plot_curves(axes[0], nmse_curves, "NMSE", colour, log=True, title=nmse_title)
    plot_curves(axes[1], only_dynamic(curves["eigenvalue"]), "max real eigenvalue", colour,
                title="c  stability of DI (circuit Jacobian)")
    axes[1].axhline(0.0, color="k", lw=0.5)
    plot_curves(axes[2], only_dynamic(curves["angle_ndi"]), "angle (deg)", colour,
                title="d  angle(delta_DI, delta_NDI)")
    plot_curves(axes[3], curves["angle_B"], "angle (deg)", colour, title="e  angle(B, -W^T)")
    plot_curves(axes[4], only_dynamic(curves["angle_pbp"]), "angle (deg)", colour,
                title="f  angle(delta_DI, delta_PBP)")
    for ax in axes[:5]:
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    names = list(nmse_curves)
    final = [np.asarray(nmse_curves[n], dtype=float) for n in names]
    ratio = [f[-1] / f[0] for f in final]
    axes[5].barh(names, ratio, color=[colour[n] for n in names])
    axes[5].set_xscale("log")
    axes[5].invert_yaxis()
    axes[5].set_xlabel("final / initial error")
    axes[5].set_title("final error", loc="left", fontsize=10)
    return fig
