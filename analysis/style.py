"""Shared look of the figures: one colour per model, line styles, panel letters, log ticks.

Every figure of `dinv.analysis.figures` takes its colours from `MODEL_COLOURS`,
so a model has the same colour in every figure and no two models share one.
Closed-form models (BP, FA, PBP, NDI) are drawn as thick pale lines under the
thin lines of the simulated circuits (DI, SLDI), which are dashed: a simulated
DI that lies on its closed form NDI leaves both visible. Layer 2 of a model is
dotted (closed form) or dash-dotted (simulated). Sparse markers, staggered per
model, keep curves that coincide exactly apart.
"""

import string

import numpy as np
from matplotlib import ticker

MODEL_COLOURS = {
    "BP": "#000000",
    "FA": "#e377c2",
    "PBP": "#7f7f7f",
    "NDI a=0": "#393b79",
    "NDI a=0.01": "#1f77b4",
    "NDI a=0.001": "#17becf",
    "DI a=0": "#8c6d31",
    "DI a=0.01": "#ff7f0e",
    "DI a=0.001": "#bcbd22",
    "NDI R-Init a=0.01": "#2ca02c",
    "DI R-Init a=0.01": "#d62728",
    "SLDI a=0.01": "#9467bd",
    "SLDI a=0.001": "#8c564b",
    "SLDI R-Init a=0.01": "#e6ab02",
    "NDI a=0.1": "#6b6ecf",
    "DI-SCN a=0.1": "#31a354",
    "DI-LIF a=0.1": "#e7298a",
    "NDI-T a=0.01": "#66a61e",
    "DI-T a=0.01": "#a6761d",
    "NDFC a=0.0015": "#1b9e77",
    "DFC a=0.0015": "#d95f02",
    "GN": "#7570b3",
}
"""Colour of every model the experiments train (their names in `results.json`)."""

MODEL_ALIASES = {"NDI": "NDI R-Init a=0.01", "DI": "DI R-Init a=0.01",
                 "SLDI": "SLDI a=0.01", "NDI-T": "NDI-T a=0.01", "DI-T": "DI-T a=0.01",
                 "NDFC": "NDFC a=0.0015", "DFC": "DFC a=0.0015"}
"""Names that mean a model of `MODEL_COLOURS`: the autoencoder's NDI and DI
(R-Init feedback, alpha 0.01; its figure drops the ' uniform' / ' orthogonal'
of the model names), and the models of the second-order study (named by rule)."""

SPARE_COLOURS = ("#aec7e8", "#ff9896", "#98df8a", "#c5b0d5", "#c49c94", "#f7b6d2",
                 "#dbdb8d", "#9edae5", "#ffbb78", "#637939", "#843c39", "#7b4173")
"""Colours for names outside the table (user-defined models), in order of appearance."""

MARKERS = ("o", "s", "^", "v", "D", "P", "X", "<", ">", "*", "h", "p", "d")

SIMULATED_RULES = ("di", "sldi", "di-targets", "dfc")
"""Rules whose error is settled by a Brian2 circuit."""

LINE_STYLES = {(False, 0): "-", (False, 1): ":", (True, 0): "--", (True, 1): "-."}
"""(simulated, layer index) -> line style; layers beyond the second repeat these."""


def colours(names):
    """One colour per model name: `MODEL_COLOURS` where it has one.

    Parameters
    ----------
    names : iterable of str
        Model names (e.g. ``'DI a=0.01'``; ``'NDI'`` and ``'DI'`` via `MODEL_ALIASES`).

    Returns
    -------
    dict of str to str
        Name -> colour; names outside the table get `SPARE_COLOURS` in order,
        none of them a colour already given to another name of ``names``.
    """
    names = list(dict.fromkeys(names))
    known = {n: MODEL_COLOURS[MODEL_ALIASES.get(n, n)] for n in names
             if MODEL_ALIASES.get(n, n) in MODEL_COLOURS}
    spare = [c for c in SPARE_COLOURS + tuple(MODEL_COLOURS.values())
             if c not in known.values()]
    unknown = [n for n in names if n not in known]
    return {n: known[n] if n in known else spare[unknown.index(n) % len(spare)]
            for n in names}


def is_simulated(name, rule=None):
    """Whether a model's errors come from a simulated circuit (DI, SLDI, DI of targets, DFC).

    ``rule`` (a registered rule name) decides when given; otherwise the first
    word of ``name``.
    """
    if rule is not None:
        return rule in SIMULATED_RULES
    return name.split(" ", 1)[0] in ("DI", "SLDI", "DI-T", "DFC")


def line_style(name, colour, simulated, layer=0, points=None, order=0):
    """Keyword arguments of ``Axes.plot`` for one curve of one model.

    Parameters
    ----------
    name : str
        Label of the curve.
    colour : str
    simulated : bool
        Thin and dashed on top (simulated circuits), or thick and pale below
        (closed forms).
    layer : int
        0 for layer 1 (or a model without layers), 1 for layer 2, ...
    points : int or None
        Length of the curve: with it, about 7 markers, shifted by ``order``
        (the model's place in the figure) so that coinciding curves show
        every model's markers.
    order : int

    Returns
    -------
    dict
    """
    style = {"color": colour, "label": name, "ls": LINE_STYLES[(simulated, layer % 2)],
             "lw": 1.1 if simulated else 2.6, "alpha": 1.0 if simulated else 0.6,
             "zorder": 3 if simulated else 2}
    if points:
        every = max(points // 7, 1)
        style.update(marker=MARKERS[order % len(MARKERS)], ms=4, mec=colour,
                     markevery=(int(order * every / 5) % every, every))
        if not simulated:
            style["mfc"] = "none"
    return style


def panel_titles(axes, titles, fontsize=10):
    """Title every panel with its letter: a, b, c, ... in the order of ``axes``.

    Parameters
    ----------
    axes : sequence of Axes
    titles : sequence of str
        One per axes, without the letter.
    """
    if len(titles) > len(string.ascii_lowercase):
        raise ValueError(f"{len(titles)} panels: more than there are letters")
    for letter, ax, title in zip(string.ascii_lowercase, axes, titles):
        ax.set_title(f"{letter}  {title}", loc="left", fontsize=fontsize)


def _tick_label(value, plain=True):
    """A tick label: plain (0.6, 20, 1500) or 10^-5 / 2x10^-5."""
    if value <= 0:
        return ""
    if plain:
        return f"{value:g}"
    exponent = int(np.floor(np.log10(value) + 1e-9))
    mantissa = value / 10.0 ** exponent
    if abs(mantissa - 1.0) < 1e-6:
        return f"$10^{{{exponent}}}$"
    return f"${mantissa:g}\\times10^{{{exponent}}}$"


def log_ticks(ax, axis="y"):
    """Readable ticks on a log axis, for its current limits.

    Decades where the axis spans two or more, 1-2-5 steps where it spans one,
    round linear steps within a decade, and no minor labels to collide; labels
    are plain numbers (0.6, not 6x10^-1) where every tick lies in [1e-3, 1e5),
    otherwise powers of ten (10^-5, 2x10^-5).

    Parameters
    ----------
    ax : Axes
        With a log-scaled ``axis`` and its data already drawn.
    axis : {'x', 'y'}
    """
    target = ax.xaxis if axis == "x" else ax.yaxis
    low, high = sorted(ax.get_xlim() if axis == "x" else ax.get_ylim())
    if not (low > 0 and np.isfinite(high) and high > low):
        return
    ticks = _log_tick_values(low, high)
    plain = bool(np.all((ticks >= 1e-3) & (ticks < 1e5)))
    target.set_major_locator(ticker.FixedLocator(ticks))
    target.set_major_formatter(ticker.FuncFormatter(lambda v, _: _tick_label(v, plain)))
    decades = np.log10(high / low)
    target.set_minor_locator(ticker.LogLocator(subs="auto") if decades > 1
                             else ticker.NullLocator())
    target.set_minor_formatter(ticker.NullFormatter())


def _log_tick_values(low, high):
    """Tick values in [low, high]. Within 0.7 decades: round linear steps (0.6,
    0.7, 0.8; 5, 10, 15), about four, if they reach both ends of the axis
    (neither end more than a third of the axis from a tick). Otherwise (on a
    wider axis linear steps crowd its top and leave its bottom bare: 25, 50, 75
    from 11 to 95) the first with three or more of: powers of ten (every k-th of
    more than eight, 10^0 among them), 1-2-5 steps, 1-1.5-2-3-5-7 steps (15,
    20, 30, 50, 70), 1-9 steps."""
    decades = np.log10(high / low)
    if decades < 0.7:
        for bins in (4, 6):
            # tick_values returns an array (its stubs say a Sequence)
            ticks = np.asarray(
                ticker.MaxNLocator(bins, steps=[1, 2, 2.5, 5, 10]).tick_values(low, high))
            ticks = ticks[(ticks >= low * (1 - 1e-9)) & (ticks <= high * (1 + 1e-9))]
            if ticks.size >= 3 and max(np.log10(ticks[0] / low),
                                       np.log10(high / ticks[-1])) <= decades / 3:
                return ticks
    exponents = np.arange(np.floor(np.log10(low)), np.ceil(np.log10(high)) + 1)
    step = int(np.ceil(exponents.size / 8))
    for subs in ((1.0,), (1.0, 2.0, 5.0), (1.0, 1.5, 2.0, 3.0, 5.0, 7.0),
                 tuple(np.arange(1.0, 10.0))):
        ticks = np.array([s * 10.0 ** e for e in exponents[exponents % step == 0]
                          for s in subs])
        ticks = ticks[(ticks >= low * (1 - 1e-9)) & (ticks <= high * (1 + 1e-9))]
        if ticks.size >= 3:
            break
    return ticks


def value_ticks(ax, values, axis="x"):
    """Ticks of a log axis at the values the data were taken at (e.g. the
    ratios of a sweep), labelled plainly; no minor ticks."""
    target = ax.xaxis if axis == "x" else ax.yaxis
    values = np.unique(np.asarray(values, dtype=float))
    plain = bool(np.all((values >= 1e-3) & (values < 1e5)))
    target.set_major_locator(ticker.FixedLocator(values))
    target.set_major_formatter(ticker.FuncFormatter(lambda v, _: _tick_label(v, plain)))
    target.set_minor_locator(ticker.NullLocator())
