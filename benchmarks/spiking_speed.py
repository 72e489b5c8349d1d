"""Speed of a spiking layer pair: numpy loop, Brian2 runtime (Cython) and cpp_standalone.

One layer pair (contracting 20 <- 10 by default, B = -W^T, alpha 0.1, tau 10
ms), both populations spike-coding networks (``--kind lif`` for LIF
ensembles), K neurons per dimension, so 30 K neurons in all. The same
equations and the same parameters run as

* the plain numpy Euler loop `dinv.spiking_reference.simulate_pair`;
* `dinv.circuits.standalone.StandalonePair` in Brian2's runtime mode
  (Cython), in this process;
* the same class under ``cpp_standalone``, built in a subprocess
  (`run_standalone`): generating and compiling the project is timed apart
  from the runs of the compiled binary, the first with the case's weights
  and the others with new weights and targets (no recompilation).

Reported per size: seconds per simulated second of each (runtime: the best
run after the first, whose code generation is timed apart; standalone: the
best rerun, whole call and the binary's own time), the ratio to the numpy
loop, and whether the spike counts agree. The goal: Brian2 no slower
than the numpy loop from 10^3 neurons up. Results go to a JSON file with the
machine's facts (cores, load average before and after).

Run: ``python benchmarks/spiking_speed.py`` (about 5 minutes on an idle
2-core machine, most of it compiling three standalone projects);
``--sizes 8 32 128 512 1024 --standalone-sizes 32 128 512 1024 --duration 0.1``
for more.
"""

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import brian2
import numpy as np

from dinv.circuits.standalone import StandalonePair, run_standalone
from dinv.spiking_reference import make_population, simulate_pair, steady_radius
from dinv.theory import layer_steady_state, steady_control

ALPHA = 0.1


def case(d_out, d_in, seed=0, scale=1.0, sign=1.0):
    """W, B = -W^T, a target and the closed form (Eq. 10) of the reference layer pair."""
    rng = np.random.default_rng(seed)
    W = scale * rng.standard_normal((d_out, d_in)) / np.sqrt(d_in)
    target = sign * rng.standard_normal(d_out)
    delta = layer_steady_state(W, -W.T, target[None], ALPHA)[0]
    u = steady_control(W, -W.T, target[None], ALPHA)[0]
    return dict(W=W, B=-W.T, target=target, alpha=ALPHA, reference=(delta, u))


def machine():
    return {"nproc": os.cpu_count(), "load_average": list(os.getloadavg()),
            "platform": platform.platform(), "python": platform.python_version(),
            "brian2": brian2.__version__, "numpy": np.__version__}


def measure(kind, K, d_out, d_in, dt, duration, repeats, standalone, workdir):
    """One size: the three simulators on the same case; seconds and spike counts."""
    first = case(d_out, d_in)
    delta, u = first["reference"]
    system = make_population(kind, d_in, K, steady_radius(delta), rng=1)
    controller = make_population(kind, d_out, K, steady_radius(u), rng=2)
    others = [case(d_out, d_in, seed=0, scale=1.0 + 0.1 * r, sign=(-1.0) ** r)
              for r in range(1, repeats + 1)]
    kwargs = dict(dt=dt, duration=duration)
    record = {"kind": kind, "neurons_per_dim": K, "neurons": K * (d_in + d_out),
              "shape": [d_out, d_in], "dt": dt, "duration": duration}

    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        ref = simulate_pair(first["W"], first["B"], first["target"], ALPHA, system,
                            controller, reference=first["reference"], **kwargs)
        times.append(time.perf_counter() - start)
    record["numpy_s_per_s"] = min(times) / duration
    record["spikes"] = ref.system.spikes + ref.controller.spikes
    record["mean_rate_hz"] = [ref.system.mean_rate_hz, ref.controller.mean_rate_hz]

    start = time.perf_counter()
    pair = StandalonePair(d_out, d_in, system, controller, **kwargs)
    run = pair.run(**first)
    record["runtime_first_s"] = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run = pair.run(**first)
        times.append(time.perf_counter() - start)
    record["runtime_s_per_s"] = min(times) / duration
    record["runtime_spikes_equal"] = bool(
        np.array_equal(run.system.spike_counts, ref.system.spike_counts)
        and np.array_equal(run.controller.spike_counts, ref.controller.spike_counts))

    if standalone:
        pair_kwargs = dict(d_out=d_out, d_in=d_in, system=system, controller=controller,
                           **kwargs)
        directory = Path(workdir) / f"{kind}_{K}"
        runs, timings = run_standalone(pair_kwargs, [first] + others,
                                       directory=str(directory))
        record["standalone_construct_s"] = timings["construct"] + timings["record"]
        record["standalone_compile_s"] = timings["compile"]
        record["standalone_first_run_s"] = timings["runs"][0]
        record["standalone_rerun_s_per_s"] = min(timings["runs"][1:]) / duration
        record["standalone_binary_s_per_s"] = min(timings["binary"][1:]) / duration
        record["standalone_spikes_equal"] = bool(
            np.array_equal(runs[0].system.spike_counts, ref.system.spike_counts)
            and np.array_equal(runs[0].controller.spike_counts,
                               ref.controller.spike_counts))
    for name in ("runtime_s_per_s", "standalone_rerun_s_per_s", "standalone_binary_s_per_s"):
        if name in record:
            record[name.replace("_s_per_s", "_ratio")] = record[name] / record["numpy_s_per_s"]
    return record


def table(records):
    lines = [f"{'K':>5} {'neurons':>8} {'numpy':>8} {'runtime':>8} {'ratio':>6} "
             f"{'sa rerun':>8} {'ratio':>6} {'sa bin':>8} {'ratio':>6} {'compile':>8} "
             f"{'spikes':>8}  (s per simulated s; compile in s)"]
    for r in records:
        sa = ("-", "-", "-", "-", "-")
        if "standalone_rerun_s_per_s" in r:
            sa = (f"{r['standalone_rerun_s_per_s']:.2f}", f"{r['standalone_rerun_ratio']:.2f}",
                  f"{r['standalone_binary_s_per_s']:.2f}",
                  f"{r['standalone_binary_ratio']:.2f}", f"{r['standalone_compile_s']:.0f}")
        same = r["runtime_spikes_equal"] and r.get("standalone_spikes_equal", True)
        lines.append(f"{r['neurons_per_dim']:>5} {r['neurons']:>8} {r['numpy_s_per_s']:>8.2f} "
                     f"{r['runtime_s_per_s']:>8.2f} {r['runtime_ratio']:>6.2f} "
                     f"{sa[0]:>8} {sa[1]:>6} {sa[2]:>8} {sa[3]:>6} {sa[4]:>8} "
                     f"{'same' if same else 'DIFFER':>8}")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kind", choices=("scn", "lif"), default="scn")
    parser.add_argument("--sizes", type=int, nargs="+", default=[8, 32, 128, 512],
                        help="neurons per dimension")
    parser.add_argument("--standalone-sizes", type=int, nargs="*", default=[32, 128, 512],
                        help="sizes also built under cpp_standalone (one compile each)")
    parser.add_argument("--shape", type=int, nargs=2, default=[10, 20],
                        metavar=("D_OUT", "D_IN"))
    parser.add_argument("--dt", type=float, default=1e-5, help="Euler step (second)")
    parser.add_argument("--duration", type=float, default=0.05,
                        help="simulated time per run (second)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--workdir", default=None,
                        help="where the standalone projects go (default: a temporary folder)")
    parser.add_argument("--output", default="benchmarks/results/spiking_speed.json")
    args = parser.parse_args(argv)
    workdir = args.workdir or tempfile.mkdtemp(prefix="dinv_spiking_speed_")
    facts = machine()
    records = []
    for K in args.sizes:
        records.append(measure(args.kind, K, *args.shape, args.dt, args.duration,
                               args.repeats, K in args.standalone_sizes, workdir))
        print(table(records[-1:]).splitlines()[-1], flush=True)
    facts["load_average_after"] = list(os.getloadavg())
    print(table(records))
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps({"machine": facts, "arguments": vars(args),
                                  "records": records}, indent=1))
    print(f"wrote {output}")


if __name__ == "__main__":
    main()
