"""Print the user guide's tables of the spiking study and of the spiking DI training.

Usage::

    python docs/scripts/spiking_tables.py RESULTS_DIR_OF_SPIKING_INVERSION [LINEAR_REGRESSION_DIR]

Reads the ``results.json`` that ``dinv run spiking-inversion`` (and optionally
``dinv run linear-regression``) wrote and prints Markdown tables: angle, relative
error and moment-to-moment RMS error against neurons per dimension with the
fitted log-log slopes, rates, silencing, and the spiking DI models' training.
"""

import json
import sys
from pathlib import Path

import numpy as np


def _fmt(value):
    return f"{value:.2g}" if abs(value) < 0.1 else f"{value:.3g}"


def study_tables(results):
    """Markdown lines of the scaling table (every model and case) and the rest."""
    sizes = sorted({r["neurons_per_dim"] for r in results["scaling"]})
    slopes = {(s["population"], s["case"]): s for s in results["slopes"]}
    lines = ["| model, case | quantity | " + " | ".join(map(str, sizes)) + " | slope |",
             "|---|---|" + "---|" * len(sizes) + "---|"]
    for (population, case), slope in slopes.items():
        rows = {r["neurons_per_dim"]: r for r in results["scaling"]
                if r["population"] == population and r["case"] == case}
        for key, label in (("angle_deg", "angle (deg)"), ("rel_error", "rel. error"),
                           ("rms_error", "RMS")):
            cells = [_fmt(rows[n][key]) if n in rows else "-" for n in sizes]
            lines.append(f"| `{population}` {case} | {label} | " + " | ".join(cells)
                         + f" | {slope[key]:.2f} |")
    rates = {}
    for r in results["scaling"]:
        rates.setdefault(r["population"], []).append((r["mean_rate_hz"], r["max_rate_hz"]))
    lines.append("")
    for population, values in rates.items():
        mean, peak = np.array(values).T
        lines.append(f"- `{population}` mean rates {mean.min():.1f}-{mean.max():.1f} Hz, "
                     f"max {peak.min():.0f}-{peak.max():.0f} Hz")
    for population, entry in results["silencing"].items():
        lines.append(f"- `{population}` silencing {entry['fraction']:.0%} at "
                     f"{entry['intact']['neurons_per_dim']} per dim: "
                     f"{entry['intact']['angle_deg']:.3g} -> "
                     f"{entry['silenced']['angle_deg']:.3g} degrees "
                     f"(x{entry['angle_ratio']:.2f}); mean rate "
                     f"{entry['intact']['mean_rate_hz']:.1f} -> "
                     f"{entry['silenced']['mean_rate_hz']:.1f} Hz")
    for key, label in (("tau_sweep", "readout_ms"), ("duration_sweep", "duration_tau")):
        for r in results[key]:
            lines.append(f"- {key}: `{r['population']}` {label}={r[label]:g}: angle "
                         f"{r['angle_deg']:.3g} deg, RMS {r['rms_error']:.3g}")
    lines.append(f"- wall time {results['wall_seconds']:.0f} s")
    return lines


def training_lines(record):
    """Markdown lines of the spiking DI models of a linear-regression record."""
    lines = []
    for name in record.get("spiking", {}):
        final = record["final"][name]
        lines.append(f"- {name}: final / initial error {final['error_ratio']:.2g}, median "
                     f"angle to NDI {final['angle_ndi_deg']:.3g} deg, {final['updates']} "
                     f"updates, {final['seconds_per_update']:.3f} s per update")
    for name in ("NDI a=0.1",):
        if name in record["final"]:
            lines.append(f"- {name}: final / initial error "
                         f"{record['final'][name]['error_ratio']:.2g}")
    lines.append(f"- wall time {record['wall_seconds']:.0f} s")
    return lines


def main(argv):
    """Print the tables of the folders in ``argv``."""
    if not argv:
        raise SystemExit(__doc__)
    study = json.loads((Path(argv[0]) / "results.json").read_text())
    print("\n".join(study_tables(study)))
    if len(argv) > 1:
        print()
        print("\n".join(training_lines(json.loads((Path(argv[1]) / "results.json").read_text()))))


if __name__ == "__main__":
    main(sys.argv[1:])
