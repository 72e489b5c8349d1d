"""Print the tables and comparisons of the user guide's page "Second-order view".

Usage::

    python docs/scripts/second_order_tables.py RESULTS_DIR_OF_SECOND_ORDER

Reads the ``results.json`` that ``dinv run second-order`` wrote and prints, per
case, a reStructuredText table of every rule's median (over training) angle to
the damped Gauss-Newton update and to the Gauss-Newton target, and its
null-space share, per layer; then the comparisons the page's conclusion rests
on (which rules are closer to Gauss-Newton than BP, layer by layer) and how the
simulated circuits settled.
"""

import json
import sys
from pathlib import Path


def _number(value, digits=1):
    return "-" if value is None else f"{value:.{digits}f}"


def case_table(record, case):
    """RST lines of one case's table: rule x layer, 'GN / GNT / null share' per cell."""
    rows = [m for m in record["medians"] if m["case"] == case]
    layers = sorted({m["layer"] for m in rows})
    entry = record["cases"][case]
    title = (f"{case} ({'-'.join(map(str, entry['sizes']))}, {entry['hidden']} hidden "
             f"layers; alpha {entry['alpha']:g}, damping {entry['damping']:g}): median angle "
             "to GN / to the GN target (degrees) / null-space share")
    lines = [f".. list-table:: {title}", "   :header-rows: 1", "",
             "   * - rule"]
    lines += [f"     - layer {layer}" + (" (output)" if layer == layers[-1] else "")
              for layer in layers]
    for rule in dict.fromkeys(m["rule"] for m in rows):
        cells = {m["layer"]: m for m in rows if m["rule"] == rule}
        lines.append(f"   * - {rule}")
        for layer in layers:
            m = cells.get(layer)
            lines.append("     - -" if m is None else
                         f"     - {_number(m['to_gn_deg'])} / {_number(m['to_gnt_deg'])} / "
                         f"{_number(m['null_share'], 2)}")
    return lines + [""]


def losses(record):
    """Per case: every model's training loss after the last update."""
    return [f"{case} final training loss: " + ", ".join(
        f"{model} {values['train_loss']:.3g}" for model, values in entry["final"].items())
        for case, entry in record["cases"].items()]


def comparisons(record):
    """Per case and hidden layer: the rules closer to GN than BP, and DI of targets
    against DI of errors (median angles to GN and to the GN target)."""
    lines = []
    medians = {(m["case"], m["rule"], m["layer"]): m for m in record["medians"]}
    for case in record["cases"]:
        layers = sorted({layer for c, _, layer in medians if c == case})[:-1]
        for layer in layers:
            bp = medians.get((case, "BP", layer))
            if bp is None:
                continue
            closer = [rule for (c, rule, l), m in medians.items()
                      if c == case and l == layer and rule not in ("BP", "GN")
                      and m["to_gn_deg"] is not None and m["to_gn_deg"] < bp["to_gn_deg"]]
            line = (f"{case}, layer {layer}: BP {bp['to_gn_deg']:.1f} deg to GN; closer: "
                    f"{', '.join(closer) or 'none'}")
            for pair in (("DI", "DI-T"), ("NDI", "NDI-T")):
                a, b = (medians.get((case, r, layer)) for r in pair)
                if a is not None and b is not None:
                    line += (f"; {pair[1]} vs {pair[0]}: GN {b['to_gn_deg']:.1f} vs "
                             f"{a['to_gn_deg']:.1f}, GNT {b['to_gnt_deg']:.1f} vs "
                             f"{a['to_gnt_deg']:.1f}")
            lines.append(line)
    return lines


def settling_lines(record):
    """How often each simulated circuit fell short of the settling tolerance, and each
    closed form found by Newton's method of its exact steady state."""
    lines = [f"{name}: {entry['unsettled']} of {entry['settles']} settles unsettled "
             f"(median residual {entry['median_residual']:.2g})"
             for name, entry in record["settling"].items()]
    for case, entry in record["cases"].items():
        lines += [f"{case} {name}: exact steady state not found for {count['samples']} of "
                  f"{count['of']} samples" for name, count in entry.get("unsolved", {}).items()]
    return lines


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print(__doc__)
        return 2
    record = json.loads((Path(argv[0]) / "results.json").read_text())
    for case in record["cases"]:
        print("\n".join(case_table(record, case)))
    print("\n".join(losses(record)))
    print("\n".join(comparisons(record)))
    print("\n".join(settling_lines(record)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
