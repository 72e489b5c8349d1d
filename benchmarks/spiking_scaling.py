"""Error of spiking layer pairs against the closed form as neurons per dimension grow.

Reference case of the spiking study: contracting layer pair 20 <- 10, W ~ N(0, 1/10),
B = -W^T, alpha = 0.1, tau 10 ms for both populations, readout averaged over
the last fifth of the run; radii 1.5 x the largest steady-state component
(`dinv.circuits.spiking.layer_radii`). Prints, per model and size, the angle
and relative error of the time-averaged delta_{l-1} against Eq. (10), the
moment-to-moment relative RMS error over the averaging window, mean rates,
and the fitted log-log slopes; ``--json PATH`` writes the records.

    python benchmarks/spiking_scaling.py [--models scn,lif] [--sizes 16,32,64,128,256]
"""

import argparse
import json
import time

import numpy as np

from dinv.circuits import LayerCircuit, SettleOptions, layer_radii, lif_population, scn_population
from dinv.theory import layer_steady_state

FACTORIES = {"scn": scn_population, "lif": lif_population}


def angle_deg(a, b):
    a, b = np.ravel(a), np.ravel(b)
    cos = a @ b / (np.linalg.norm(a) * np.linalg.norm(b))
    return float(np.degrees(np.arccos(np.clip(cos, -1.0, 1.0))))


def reference_case(seed=0):
    rng = np.random.default_rng(seed)
    W = rng.normal(0.0, np.sqrt(1 / 10), (10, 20))
    return W, -W.T, rng.normal(0.0, 1.0, (1, 10)), 0.1


def measure(model, per_dim, duration=40.0, dt=0.002, seed=0, silence=0.0, case_seed=0):
    """One settle of the reference case; returns a record (dict)."""
    W, B, delta, alpha = reference_case(case_seed)
    ref = layer_steady_state(W[None], B[None], delta[None], alpha)
    make = FACTORIES[model]
    steps = int(round(duration / dt))
    options = SettleOptions(system=make("system", per_dim, seed=seed),
                            controller=make("controller", per_dim, seed=seed), dt=dt,
                            steps=steps, record_every=50, on_unsettled="ignore")
    circuit = LayerCircuit(10, 20, options=options)
    if silence:
        circuit.silence(silence, seed=seed)
    start = time.perf_counter()
    result = circuit.settle(W, B, delta, alpha, radius=layer_radii(W, B, delta, alpha))
    seconds = time.perf_counter() - start
    traces = result.traces
    late = traces["t"] >= (1 - options.average_fraction) * traces["t"][-1]
    moment = traces["delta"][late]
    rms = float(np.sqrt(np.mean(np.sum((moment - ref) ** 2, axis=-1)))
                / np.linalg.norm(ref))
    stats = result.spiking
    return {"population": model, "case": "contracting", "neurons_per_dim": per_dim,
            "angle_deg": angle_deg(result.delta, ref),
            "rel_error": float(np.linalg.norm(result.delta - ref) / np.linalg.norm(ref)),
            "rms_error": rms, "residual": float(result.residual.max()),
            "mean_rate_hz": float(np.mean([s["mean_rate_hz"] for s in stats.values()])),
            "max_rate_hz": float(max(s["max_rate_hz"] for s in stats.values())),
            "silenced": silence, "seconds": seconds}


def slope(records, key):
    x = np.log([r["neurons_per_dim"] for r in records])
    y = np.log([r[key] for r in records])
    return float(np.polyfit(x, y, 1)[0])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="scn,lif")
    parser.add_argument("--sizes", default="16,32,64,128,256")
    parser.add_argument("--duration", type=float, default=40.0, help="run length in tau")
    parser.add_argument("--silence", type=float, default=0.0)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    records = []
    for model in args.models.split(","):
        rows = []
        for size in [int(s) for s in args.sizes.split(",")]:
            record = measure(model, size, args.duration, silence=args.silence)
            rows.append(record)
            print(f"{model} K={size:4d} angle {record['angle_deg']:.4f} deg  rel "
                  f"{record['rel_error']:.3g}  rms {record['rms_error']:.3g}  residual "
                  f"{record['residual']:.2g}  rates {record['mean_rate_hz']:.1f} Hz (max "
                  f"{record['max_rate_hz']:.0f})  {record['seconds']:.1f} s", flush=True)
        if len(rows) > 1:
            print(f"{model} slopes: angle {slope(rows, 'angle_deg'):.2f}, rel "
                  f"{slope(rows, 'rel_error'):.2f}, rms {slope(rows, 'rms_error'):.2f}",
                  flush=True)
        records += rows
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(records, handle, indent=1)


if __name__ == "__main__":
    main()
