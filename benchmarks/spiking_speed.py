"""Speed of the spiking circuits: training updates, and a layer pair against its peers.

Part 1, **updates**: milliseconds per update of the two spiking DI models of
``dinv run linear-regression`` (``DI-SCN a=0.1``, ``DI-LIF a=0.1``; each update
settles the 20 <- 10 layer pair of spiking populations once, 2500 or 1000
steps), measured here with the code on ``sys.path`` ("after"), beside the same
measurement of an earlier version of the code recorded in a baseline file
("before"; ``--record-baseline``). Each model trains three times: a warm-up
pass (which pays Brian2's compilation and builds the circuit), then passes of
``U1`` and ``U2`` updates (``--updates``); the time per update is the
difference of the last two passes' times over ``U2 - U1``, so the fixed costs
of a pass (its companion process, its start and end) drop out.

Part 2, **a layer pair, per simulated second**: the reference case of the
spiking study (contracting 20 <- 10, W ~ N(0, 1/10), B = -W^T, alpha 0.1, tau
10 ms for both populations, radii 1.5 x the closed form), both populations
spike-coding networks (``--kind lif``: LIF ensembles), K neurons per
dimension (30 K neurons), dt 10 us, ``--duration`` of simulated time, as

* ``numpy``: the plain numpy loop `dinv.spiking_reference.simulate_pair`;
* ``runtime``: the package's own circuit (`dinv.circuits.LayerCircuit`) in
  Brian2's runtime mode (Cython), the best of ``--repeats`` runs after the
  first (compilation apart);
* ``standalone``: `dinv.circuits.standalone.StandalonePair` under
  ``cpp_standalone`` in a subprocess, built once and rerun with new weights
  and targets through ``run_args`` (no recompilation): the whole call (process
  start, files) and the compiled binary's own loop;
* ``compiled``: a lower bound, one numba loop of the same equations in the
  same order (`compiled_pair` below), no Brian2 at all;

with the ratios runtime / numpy, runtime / compiled and runtime / the faster
of the two compiled loops (numba's and the standalone binary's) (the goals:
at most 1 from 10^3 neurons up, and at most 3), and whether every simulator
gave the same spikes (the SCN neurons are the circuit's own draw in all four).
Columns: seconds per simulated second; "standal." the whole standalone call,
"binary" its compiled loop alone, "compile" its one-off build.

Run (one process; numba from the ``benchmarks`` extra,
``pip install -e ".[benchmarks]"``)::

    python benchmarks/spiking_speed.py            # ~10 min on an idle 2-core machine
    python benchmarks/spiking_speed.py --quick    # ~3 min: fewer updates and sizes

and, to record the "before" of part 1 from another version of the code (e.g.
a checkout of an earlier commit in ``/tmp/old``)::

    PYTHONPATH=/tmp/old python benchmarks/spiking_speed.py --record-baseline \\
        benchmarks/results/spiking_update_baseline.json

Results go to ``benchmarks/results/spiking_speed.json`` with the machine's facts
(cores, load average before and after).
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
BASELINE = HERE / "results" / "spiking_update_baseline.json"
MODELS = {"scn": "DI-SCN a=0.1", "lif": "DI-LIF a=0.1"}
ALPHA = 0.1
TAU = 0.01


def machine():
    """Facts of the machine and of the code measured."""
    import brian2

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, cwd=Path(__import__("dinv").__file__).parent,
                            check=False).stdout.strip()
    return {"nproc": os.cpu_count(), "load_average": list(os.getloadavg()),
            "platform": platform.platform(), "python": platform.python_version(),
            "brian2": brian2.__version__, "numpy": np.__version__,
            "dinv": str(Path(__import__("dinv").__file__).parent), "commit": commit or None,
            "date": time.strftime("%Y-%m-%d %H:%M")}


# --------------------------------------------------------------------------
# part 1: training updates
# --------------------------------------------------------------------------


def _train(population, updates):
    """Wall and CPU seconds (this process: the simulation's side) of one training pass of
    the spiking model on ``updates`` updates."""
    from dinv.experiments.registry import get_experiment, make_config

    experiment = get_experiment("linear-regression")
    config = make_config(experiment, False, {"models": [MODELS[population]],
                                             "spiking_updates": updates})
    start, cpu = time.perf_counter(), time.process_time()
    experiment.run(config, progress=False)
    return time.perf_counter() - start, time.process_time() - cpu


def update_ms(population, first, second):
    """Milliseconds per update of the spiking model, wall and CPU (difference of two
    passes, after a warm-up pass that builds and compiles the circuit). The CPU time of
    this process depends less on the machine's load than the wall time."""
    _train(population, 2)
    times = [_train(population, count) for count in (first, second)]
    return tuple(1e3 * (b - a) / (second - first) for a, b in zip(*times))


def measure_updates(first, second):
    """Per population: (wall, CPU) milliseconds per update."""
    return {population: update_ms(population, first, second) for population in MODELS}


# --------------------------------------------------------------------------
# part 2: a layer pair per simulated second
# --------------------------------------------------------------------------


def case(seed=0, d_out=10, d_in=20, scale=1.0, sign=1.0):
    """W, B = -W^T, a target and the closed form (Eq. 10) of the reference layer pair."""
    from dinv.theory import layer_steady_state, steady_control

    rng = np.random.default_rng(seed)
    W = scale * rng.standard_normal((d_out, d_in)) / np.sqrt(d_in)
    target = sign * rng.standard_normal(d_out)
    delta = layer_steady_state(W, -W.T, target[None], ALPHA)[0]
    u = steady_control(W, -W.T, target[None], ALPHA)[0]
    return dict(W=W, B=-W.T, target=target, alpha=ALPHA, reference=(delta, u))


def circuit_specs(kind, K, problem):
    """The circuit's populations and, for the other simulators, specifications with the
    circuit's own neurons (its draw per block, its radii)."""
    from dinv.circuits import layer_radii
    from dinv.circuits.nef import lif_population
    from dinv.circuits.scn import scn_population
    from dinv.circuits.spiking import block_stream
    from dinv.spiking import scn_parameters
    from dinv.spiking_reference import SCNPopulation, make_population

    radii = layer_radii(problem["W"][None], problem["B"][None], problem["target"][None, None],
                        ALPHA)
    dims = {"system": problem["W"].shape[1], "controller": problem["W"].shape[0]}
    radius = {role: np.full(dims[role], float(radii[role][0, 0])) for role in dims}
    factory = scn_population if kind == "scn" else lif_population
    models = {role: factory(role, K) for role in dims}
    if kind == "scn":
        specs = {role: SCNPopulation(scn_parameters(dims[role], K, block_stream(0, role)),
                                     radius[role]) for role in dims}
    else:  # the circuit's NEF draw has its own initial state: same equations, other neurons
        specs = {role: make_population("lif", dims[role], K, radius[role], rng=k + 1)
                 for k, role in enumerate(dims)}
    return models, specs, radii


def compiled_pair(fastmath=True):
    """The numba loop of an SCN or LIF layer pair: `dinv.spiking_reference.simulate_pair`'s
    equations and order (controller, then system; thresholds; sequential spikes), in one
    compiled function. Written for this benchmark as a lower bound of the cost of a step."""
    import numba

    jit = numba.njit(cache=True, fastmath=fastmath)

    @jit
    def feed(M, source, out):
        """out = M source, summed in the order of the source's entries."""
        for i in range(M.shape[0]):
            acc = 0.0
            for j in range(M.shape[1]):
                acc += M[i, j] * source[j]
            out[i] = acc

    @jit
    def scn_integrate(drive, x, y, r, rate, leak, target, decay):
        for i in range(x.size):
            y[i] += rate * (drive[i] - (leak * x[i] + target[i]))
            x[i] += decay * x[i]
        for k in range(r.size):
            r[k] += decay * r[k]

    @jit
    def scn_above(k, dec, dim, x, y, rad, mu, r, bound):
        d = dim[k]
        return dec[k] * ((y[d] - x[d]) / rad[d]) - mu * r[k] > bound[k]

    @jit
    def scn_candidates(dec, dim, x, y, rad, mu, r, bound, out):
        count = 0
        for k in range(dec.size):
            if scn_above(k, dec, dim, x, y, rad, mu, r, bound):
                out[count] = k
                count += 1
        return count

    @jit
    def scn_spikes(cand, count, dec, dim, x, y, rad, mu, r, bound, spikes):
        for c in range(count):
            k = cand[c]
            if scn_above(k, dec, dim, x, y, rad, mu, r, bound):
                x[dim[k]] += rad[dim[k]] * dec[k]
                r[k] += 1.0
                spikes[k] += 1

    @jit
    def scn_pair(W, B, target, alpha, steps, window, rate_c, rate_s, decay,
                 dec_c, dim_c, rad_c, mu_c, bound_c, dec_s, dim_s, rad_s, mu_s, bound_s):
        d_out, d_in = W.shape
        xc, yc, xs, ys = np.zeros(d_out), np.zeros(d_out), np.zeros(d_in), np.zeros(d_in)
        rc, rs = np.zeros(dec_c.size), np.zeros(dec_s.size)
        nc, ns = np.zeros(dec_c.size, np.int64), np.zeros(dec_s.size, np.int64)
        sum_c, sum_s = np.zeros(d_out), np.zeros(d_in)
        drive_c, drive_s, none = np.empty(d_out), np.empty(d_in), np.zeros(d_in)
        cand_c = np.empty(dec_c.size, np.int64)
        cand_s = np.empty(dec_s.size, np.int64)
        for step in range(steps):
            if step >= steps - window:
                sum_c += xc
                sum_s += xs
            feed(W, xs, drive_c)
            scn_integrate(drive_c, xc, yc, rc, rate_c, alpha, target, decay)
            feed(B, xc, drive_s)
            scn_integrate(drive_s, xs, ys, rs, rate_s, 1.0, none, decay)
            count_c = scn_candidates(dec_c, dim_c, xc, yc, rad_c, mu_c, rc, bound_c, cand_c)
            count_s = scn_candidates(dec_s, dim_s, xs, ys, rad_s, mu_s, rs, bound_s, cand_s)
            scn_spikes(cand_c, count_c, dec_c, dim_c, xc, yc, rad_c, mu_c, rc, bound_c, nc)
            scn_spikes(cand_s, count_s, dec_s, dim_s, xs, ys, rad_s, mu_s, rs, bound_s, ns)
        return sum_s / window, sum_c / window, ns, nc

    @jit
    def lif_integrate(drive, x, v, last, step, mix, leak, target, rad, decay, membrane, refr,
                      gain, enc, bias, dim, encoded):
        for i in range(x.size):
            encoded[i] = ((1.0 - mix * leak) * x[i] + mix * (drive[i] - target[i])) / rad[i]
        for k in range(v.size):
            if step - last[k] >= refr:
                v[k] += membrane * ((bias[k] + (encoded[dim[k]] * enc[k]) * gain[k]) - v[k])
        for i in range(x.size):
            x[i] += decay * x[i]

    @jit
    def lif_spikes(x, v, last, step, refr, dim, jump, spikes):
        for k in range(v.size):
            if v[k] > 1.0 and step - last[k] >= refr:
                x[dim[k]] += jump[k]
                v[k] = 0.0
                last[k] = step
                spikes[k] += 1

    @jit
    def lif_pair(W, B, target, alpha, steps, window, decay, mix_c, mix_s, membrane, refr,
                 g_c, e_c, b_c, dim_c, jump_c, rad_c, g_s, e_s, b_s, dim_s, jump_s, rad_s):
        d_out, d_in = W.shape
        xc, xs = np.zeros(d_out), np.zeros(d_in)
        vc, vs = np.zeros(g_c.size), np.zeros(g_s.size)
        lc = np.full(g_c.size, -(10 ** 9), np.int64)
        ls = np.full(g_s.size, -(10 ** 9), np.int64)
        nc, ns = np.zeros(g_c.size, np.int64), np.zeros(g_s.size, np.int64)
        sum_c, sum_s = np.zeros(d_out), np.zeros(d_in)
        enc_c, enc_s = np.empty(d_out), np.empty(d_in)
        drive_c, drive_s, none = np.empty(d_out), np.empty(d_in), np.zeros(d_in)
        for step in range(steps):
            if step >= steps - window:
                sum_c += xc
                sum_s += xs
            feed(W, xs, drive_c)
            lif_integrate(drive_c, xc, vc, lc, step, mix_c, alpha, target, rad_c, decay,
                          membrane, refr, g_c, e_c, b_c, dim_c, enc_c)
            feed(B, xc, drive_s)
            lif_integrate(drive_s, xs, vs, ls, step, mix_s, 1.0, none, rad_s, decay,
                          membrane, refr, g_s, e_s, b_s, dim_s, enc_s)
            lif_spikes(xc, vc, lc, step, refr, dim_c, jump_c, nc)
            lif_spikes(xs, vs, ls, step, refr, dim_s, jump_s, ns)
        return sum_s / window, sum_c / window, ns, nc

    return scn_pair, lif_pair


def run_compiled(kernels, kind, problem, specs, dt, duration):
    """One run of the numba pair; (system spike counts, controller spike counts)."""
    steps = round(duration / dt)
    window = max(1, int(np.ceil(0.2 * steps)))
    system, controller = specs["system"], specs["controller"]
    args = (problem["W"], problem["B"], problem["target"], ALPHA, steps, window)
    if kind == "scn":
        ps, pc = system.parameters, controller.parameters
        decay = -dt / system.tau_readout
        out = kernels[0](*args, dt / TAU, dt / TAU, decay,
                         pc.decoder, pc.dim_index, controller.radius, pc.mu,
                         (pc.decoder ** 2 + pc.mu) / 2,
                         ps.decoder, ps.dim_index, system.radius, ps.mu,
                         (ps.decoder ** 2 + ps.mu) / 2)
    else:
        ps, pc = system.parameters, controller.parameters
        membrane = dt / ps.tau_rc
        refr = int((ps.tau_ref + 1e-3 * dt) / dt)
        mix = system.tau_synapse / TAU
        out = kernels[1](*args, -dt / system.tau_synapse, mix, mix, membrane, refr,
                         pc.gain, pc.encoder, pc.bias, pc.dim_index,
                         controller.radius[pc.dim_index] * (pc.decoder / controller.tau_synapse),
                         controller.radius,
                         ps.gain, ps.encoder, ps.bias, ps.dim_index,
                         system.radius[ps.dim_index] * (ps.decoder / system.tau_synapse),
                         system.radius)
    return out[2], out[3]


def _best(function, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return min(times), result


def measure_pair(kind, K, dt, duration, repeats, standalone, kernels, workdir):
    """One size: the four simulators on the same case; seconds per simulated second."""
    from brian2 import second

    from dinv.circuits import LayerCircuit, SettleOptions
    from dinv.circuits.standalone import run_standalone
    from dinv.spiking_reference import simulate_pair

    problem = case()
    models, specs, radii = circuit_specs(kind, K, problem)
    steps = round(duration / dt)
    record = {"kind": kind, "neurons_per_dim": K, "neurons": 30 * K, "dt": dt,
              "duration": duration}
    seconds, ref = _best(lambda: simulate_pair(
        problem["W"], problem["B"], problem["target"], ALPHA, specs["system"],
        specs["controller"], tau_system=TAU, tau_controller=TAU, dt=dt, duration=duration),
        repeats)
    record["numpy_s_per_s"] = seconds / duration
    counts = {"numpy": (ref.system.spike_counts, ref.controller.spike_counts)}

    circuit = LayerCircuit(10, 20, options=SettleOptions(
        system=models["system"], controller=models["controller"], dt=dt / TAU, steps=steps,
        tau_system=TAU * second, tau_controller=TAU * second, on_unsettled="ignore"))

    def settle():
        return circuit.settle(problem["W"], problem["B"], problem["target"][None], ALPHA,
                              radius=radii)

    start = time.perf_counter()
    settle()
    record["runtime_first_s"] = time.perf_counter() - start
    seconds, result = _best(settle, repeats)
    record["runtime_s_per_s"] = seconds / duration
    counts["runtime"] = (result.spiking["system"]["counts"].ravel(),
                         result.spiking["controller"]["counts"].ravel())

    if kernels is not None:
        run_compiled(kernels, kind, problem, specs, dt, duration)  # compiles (cached)
        seconds, compiled = _best(lambda: run_compiled(kernels, kind, problem, specs, dt,
                                                       duration), repeats)
        record["compiled_s_per_s"] = seconds / duration
        counts["compiled"] = compiled

    if standalone:
        others = [case(scale=1.0 + 0.1 * r, sign=(-1.0) ** r) for r in range(1, repeats + 1)]
        cases = [{key: c[key] for key in ("W", "B", "target", "alpha")}
                 for c in [problem] + others]
        pair_kwargs = dict(d_out=10, d_in=20, system=specs["system"],
                           controller=specs["controller"], tau_system=TAU,
                           tau_controller=TAU, dt=dt, duration=duration)
        runs, timings = run_standalone(pair_kwargs, cases,
                                       directory=str(Path(workdir) / f"{kind}_{K}"))
        record["standalone_compile_s"] = timings["compile"]
        record["standalone_rerun_s_per_s"] = min(timings["runs"][1:]) / duration
        record["standalone_binary_s_per_s"] = min(timings["binary"][1:]) / duration
        counts["standalone"] = (runs[0].system.spike_counts, runs[0].controller.spike_counts)

    same = {name: bool(np.array_equal(np.ravel(c[0]), np.ravel(counts["numpy"][0]))
                       and np.array_equal(np.ravel(c[1]), np.ravel(counts["numpy"][1])))
            for name, c in counts.items() if name != "numpy"}
    record["same_spikes_as_numpy"] = same
    record["spikes"] = int(np.sum(counts["numpy"][0]) + np.sum(counts["numpy"][1]))
    for name in ("numpy", "compiled"):
        if f"{name}_s_per_s" in record:
            record[f"runtime_over_{name}"] = record["runtime_s_per_s"] / record[f"{name}_s_per_s"]
    bounds = [record[key] for key in ("compiled_s_per_s", "standalone_binary_s_per_s")
              if key in record]
    if bounds:  # the faster compiled loop: numba's or Brian2's own C++
        record["runtime_over_best_compiled"] = record["runtime_s_per_s"] / min(bounds)
    return record


def pair_table(records):
    header = (f"{'K':>4} {'neurons':>8} {'numpy':>8} {'runtime':>8} {'standal.':>8} "
              f"{'binary':>8} {'compiled':>8} {'rt/numpy':>8} {'rt/comp':>8} {'rt/best':>8} "
              f"{'compile':>8}  same spikes as numpy")
    lines = [header]
    for r in records:
        def cell(key, fmt="{:.3f}", r=r):
            return fmt.format(r[key]) if key in r else "-"
        same = ", ".join(f"{k} {'yes' if v else 'NO'}"
                         for k, v in r["same_spikes_as_numpy"].items())
        lines.append(f"{r['neurons_per_dim']:>4} {r['neurons']:>8} {cell('numpy_s_per_s'):>8} "
                     f"{cell('runtime_s_per_s'):>8} {cell('standalone_rerun_s_per_s'):>8} "
                     f"{cell('standalone_binary_s_per_s'):>8} {cell('compiled_s_per_s'):>8} "
                     f"{cell('runtime_over_numpy', '{:.2f}'):>8} "
                     f"{cell('runtime_over_compiled', '{:.2f}'):>8} "
                     f"{cell('runtime_over_best_compiled', '{:.2f}'):>8} "
                     f"{cell('standalone_compile_s', '{:.0f} s'):>8}  {same}")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="fewer updates, sizes 4 and 32, standalone at 32 only")
    parser.add_argument("--record-baseline", metavar="FILE", type=Path,
                        help="measure part 1 only and write it to FILE (the 'before')")
    parser.add_argument("--baseline", type=Path, default=BASELINE,
                        help="the 'before' of part 1 (default: "
                             "benchmarks/results/spiking_update_baseline.json)")
    parser.add_argument("--updates", type=int, nargs=2, default=None, metavar=("U1", "U2"),
                        help="the two passes' updates (default 20 220; --quick 10 60)")
    parser.add_argument("--skip-updates", action="store_true", help="part 2 only")
    parser.add_argument("--kind", choices=("scn", "lif"), default="scn")
    parser.add_argument("--sizes", type=int, nargs="+", default=None,
                        help="neurons per dimension (default 4 32 128 334: 120-10020 neurons)")
    parser.add_argument("--standalone-sizes", type=int, nargs="*", default=None,
                        help="sizes also built under cpp_standalone (default 32 334)")
    parser.add_argument("--dt", type=float, default=1e-5, help="Euler step (second)")
    parser.add_argument("--duration", type=float, default=0.05,
                        help="simulated time per run (second)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--output", type=Path, default=HERE / "results" / "spiking_speed.json")
    args = parser.parse_args(argv)
    updates = args.updates or ((10, 60) if args.quick else (20, 220))
    facts = machine()
    print(f"{facts['date']}, load average {' '.join(f'{v:.2f}' for v in facts['load_average'])}"
          f", {facts['nproc']} cores, code {facts['dinv']} ({facts['commit']})", flush=True)

    if args.record_baseline is not None:
        measured = measure_updates(*updates)
        facts["load_average_after"] = list(os.getloadavg())
        args.record_baseline.parent.mkdir(parents=True, exist_ok=True)
        args.record_baseline.write_text(json.dumps(
            {"machine": facts, "updates": updates, "ms_per_update": measured}, indent=1))
        print(f"ms per update: {measured}; wrote {args.record_baseline}")
        return

    output = {"machine": facts, "arguments": {k: str(v) for k, v in vars(args).items()}}
    if not args.skip_updates:
        before = json.loads(args.baseline.read_text()) if args.baseline.is_file() else None
        after = measure_updates(*updates)
        output["updates"] = {"after_ms": after, "updates": updates,
                             "before": before}
        print("Part 1: ms per update of the spiking DI models of linear-regression")
        if before is not None:
            print(f"  before: {before['machine'].get('date')}, commit "
                  f"{before['machine'].get('commit')}, load "
                  f"{before['machine']['load_average'][0]:.2f}")
        print("  (wall ms per update; CPU ms of the simulating process in brackets)")
        for population, model in MODELS.items():
            wall, cpu = after[population]
            old = None if before is None else before["ms_per_update"][population]
            ratio = "" if old is None else f"   after / before {wall / old[0]:.2f}"
            old_text = "-" if old is None else f"{old[0]:.1f} ({old[1]:.1f})"
            print(f"  {model:14s} before {old_text:>13} ms   after {wall:6.1f} ({cpu:.1f}) ms"
                  f"{ratio}   (goal 15 ms)", flush=True)

    sizes = args.sizes or ([4, 32] if args.quick else [4, 32, 128, 334])
    standalone = args.standalone_sizes
    if standalone is None:
        standalone = [32] if args.quick else [32, 334]
    try:
        kernels = compiled_pair()
    except ImportError:
        kernels = None
        print("  (numba is not installed: no compiled lower bound; pip install -e "
              "'.[benchmarks]')")
    workdir = tempfile.mkdtemp(prefix="dinv_spiking_speed_")
    records = []
    print(f"Part 2: {args.kind} layer pair 20 <- 10, seconds per simulated second "
          f"(dt {args.dt:g} s, {args.duration:g} s simulated; best of {args.repeats})",
          flush=True)
    for K in sizes:
        records.append(measure_pair(args.kind, K, args.dt, args.duration, args.repeats,
                                    K in standalone, kernels, workdir))
        print(pair_table(records[-1:]).splitlines()[-1], flush=True)
    print(pair_table(records))
    facts["load_average_after"] = list(os.getloadavg())
    print(f"load average after: {' '.join(f'{v:.2f}' for v in facts['load_average_after'])}")
    output["pair"] = records
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(output, indent=1, default=str))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    sys.exit(main())
