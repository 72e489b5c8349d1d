"""What each reach into Brian2 internals (`dinv.circuits.brian_internals`) buys.

Measures, in this process (which imports scipy and matplotlib, as the
experiments do), the time per short settle of a small layer circuit with
each measure and without it:

* ``reuse_code_objects``: runs of a dense and of a Synapses circuit with the
  code objects kept after the first run, and with Brian2 regenerating them at
  every run;
* ``young_collection_only``: runs with ``Network.run``'s full garbage
  collection, with it made a young one (the default), and with the former
  ``gc.freeze`` of every object alive;
* ``direct_step_calls`` and ``lean_runs``: 1000-step runs of a stack of 30
  small layer circuits (one update of a 10-seed linear-regression sweep:
  10 <- 20, three DI models per seed) through Brian2's own ``Network.run`` and
  chain of calls per object, with each step calling the compiled code
  directly, and with the lean loop in place of ``Network.run`` as well;
* ``stacked_matmul`` (not in this module, but the same kind of measure): the
  same 1000-step runs of the 30 stacked circuits with the dense coupling's
  products through the compiled kernel and through ``np.matmul``, and one
  product of each shape alone;
* ``live_view``: one read or write of a state through Brian2's public
  ``group.var_[:]`` against a numpy view, per access.

Run: ``python benchmarks/brian_internals.py [--repeats 30]``
"""

import argparse
import contextlib
import gc
import time
from functools import partial

import matplotlib.pyplot  # noqa: F401  (a process as large as the experiments')
import numpy as np
import scipy.linalg  # noqa: F401

from dinv.circuits import LayerCircuit, brian_internals
from dinv.circuits import runner as runner_module

STEPS = 10


def median_ms(fn, repeats):
    """Median wall time of ``fn()`` over ``repeats`` calls, in ms."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times))


def problem(rng, d_out=3, d_in=5, batch=1):
    W = rng.standard_normal((d_out, d_in)) / np.sqrt(d_in)
    return W, -W.T, rng.standard_normal((batch, d_out))


def settle_time(circuit, args, repeats):
    """Median ms of one ``STEPS``-step settle of ``circuit`` through ``Network.run``.

    The measures of ``Network.run``'s costs need its runs: `lean_runs` (which
    skips ``Network.run`` for later runs of rate circuits) is switched off.
    Circuits with spikes, monitors or synaptic pathways run this way always.
    """
    circuit.settle(*args, 0.1, steps=STEPS, on_unsettled="ignore")  # first run: compile
    circuit.assembly.runner._lean = None
    return median_ms(lambda: circuit.settle(*args, 0.1, steps=STEPS, on_unsettled="ignore"),
                     repeats)


def regenerate_code_objects(circuit):
    """Undo `reuse_code_objects`: Brian2 builds the code objects at every run again."""
    for obj in circuit.assembly.network.objects:
        for contained in [obj] + list(getattr(obj, "contained_objects", [])):
            vars(contained).pop("create_code_objects", None)


def code_objects(rng, repeats):
    args = problem(rng)
    for coupling in ("dense", "synapses"):
        circuit = LayerCircuit(3, 5, coupling=coupling)
        kept = settle_time(circuit, args, repeats)
        regenerate_code_objects(circuit)
        fresh = settle_time(circuit, args, repeats)
        print(f"reuse_code_objects ({coupling:8s}): {fresh:7.2f} ms -> {kept:6.2f} ms per "
              f"{STEPS}-step run, saves {fresh - kept:6.2f} ms")


def collection(rng, repeats):
    args = problem(rng)
    circuit = LayerCircuit(3, 5)
    young = settle_time(circuit, args, repeats)
    original = runner_module.young_collection_only
    runner_module.young_collection_only = contextlib.nullcontext
    try:
        full = settle_time(circuit, args, repeats)
        gc.collect()
        gc.freeze()
        frozen = settle_time(circuit, args, repeats)
        gc.unfreeze()
    finally:
        runner_module.young_collection_only = original
    print(f"young_collection_only: full collection {full:7.2f} ms, young only {young:6.2f} ms, "
          f"gc.freeze (before) {frozen:6.2f} ms per {STEPS}-step run; "
          f"{gc.get_count()} objects pending, {len(gc.get_objects())} tracked")


def brian_own_runs(circuit):
    """Undo `direct_step_calls` and `lean_runs`: every run through ``Network.run`` and
    every step through Brian2's own ``run`` of each object."""
    for obj in circuit.assembly.network.objects:
        for contained in [obj] + list(getattr(obj, "contained_objects", [])):
            vars(contained).pop("run", None)
    circuit.assembly.runner._lean = None


def direct_calls(rng, repeats, n=30, steps=1000):
    W = rng.standard_normal((n, 10, 20)) / np.sqrt(20)
    args = (W, -W.transpose(0, 2, 1), rng.standard_normal((n, 1, 10)), 0.01)
    circuit = LayerCircuit(10, 20, n=n)
    network = circuit.assembly.network

    def settle():
        circuit.settle(*args, steps=steps, on_unsettled="ignore")

    settle()  # first run: compile, then the direct calls and the lean runs are set
    lean = circuit.assembly.runner._lean
    times = {"own": [], "direct": [], "lean": []}
    for _ in range(3):  # alternate, so that load changes hit all three alike
        times["lean"].append(median_ms(settle, repeats))
        brian_own_runs(circuit)
        times["own"].append(median_ms(settle, repeats))
        brian_internals.direct_step_calls(network)
        times["direct"].append(median_ms(settle, repeats))
        circuit.assembly.runner._lean = lean
    own, direct, lean = (min(times[key]) for key in ("own", "direct", "lean"))
    print(f"direct_step_calls, lean_runs: {steps}-step run of {n} stacked 10 <- 20 circuits "
          f"(one update of a 10-seed sweep): Brian2's own calls {own:6.2f} ms, direct calls "
          f"{direct:6.2f} ms ({direct / own:.2f}), lean runs {lean:6.2f} ms ({lean / own:.2f}); "
          f"{1000 * (own - lean) / steps:.1f} us less per step")


def numpy_products(circuit):
    """Undo the compiled kernel: the dense coupling's products through ``np.matmul``."""
    coupling = circuit.assembly.coupling
    swapped = {}
    for calls in list(coupling._apply.values()) + list(coupling._calls.values()):
        for index, call in enumerate(calls):
            if type(call).__name__ == "StackedMatmul":
                src, matrix, dst = call.arrays
                swapped.setdefault(id(call), partial(np.matmul, src, matrix, out=dst))
                calls[index] = swapped[id(call)]
    return len(swapped)


def compiled_products(rng, repeats, n=30, steps=1000):
    W = rng.standard_normal((n, 10, 20)) / np.sqrt(20)
    args = (W, -W.transpose(0, 2, 1), rng.standard_normal((n, 1, 10)), 0.01)
    circuits = {"kernel": LayerCircuit(10, 20, n=n), "np.matmul": LayerCircuit(10, 20, n=n)}
    settled = {}
    for name, circuit in circuits.items():
        settled[name] = circuit.settle(*args, steps=steps, on_unsettled="ignore").delta
    if numpy_products(circuits["np.matmul"]) != 2:
        raise RuntimeError("expected two compiled products in the layer circuit")
    times = {name: [] for name in circuits}
    for _ in range(3):  # alternate, so that load changes hit both alike
        for name, circuit in circuits.items():
            times[name].append(median_ms(
                lambda circuit=circuit: circuit.settle(*args, steps=steps,
                                                       on_unsettled="ignore"), repeats))
    kernel, numpy_ = min(times["kernel"]), min(times["np.matmul"])
    products = []
    for call in circuits["kernel"].assembly.coupling._apply.values():
        src, matrix, dst = call[0].arrays
        product = call[0]
        alone = median_ms(lambda product=product: [product() for _ in range(1000)], repeats)
        by_numpy = median_ms(lambda src=src, matrix=matrix, dst=dst: [
            np.matmul(src, matrix, out=dst) for _ in range(1000)], repeats)
        products.append(f"{src.shape[2]}->{matrix.shape[2]}: {alone:.2f} vs {by_numpy:.2f} us")
    print(f"stacked_matmul: {steps}-step run of {n} stacked 10 <- 20 circuits: np.matmul "
          f"{numpy_:6.2f} ms, compiled kernel {kernel:6.2f} ms ({kernel / numpy_:.2f}); "
          f"one product, kernel vs np.matmul: {'; '.join(products)}")


def views(rng, repeats, batch=1, d_in=1000):
    circuit = LayerCircuit(10, d_in, batch=batch)
    group = circuit.assembly.slots["system"].group
    view = brian_internals.live_view(group, "delta")
    value = rng.standard_normal(view.shape)
    loops = 200

    def public_read():
        for _ in range(loops):
            group.delta_[:]

    def public_write():
        for _ in range(loops):
            group.I_fb_[:] = value

    def view_read():
        for _ in range(loops):
            view.copy()

    def view_write():
        for _ in range(loops):
            view[...] = value

    per = {name: median_ms(fn, repeats) * 1000 / loops for name, fn in
           (("public read", public_read), ("public write", public_write),
            ("view read", view_read), ("view write", view_write))}
    public = per["public read"] + per["public write"]
    direct = per["view read"] + per["view write"]
    print(f"live_view: public read {per['public read']:.1f} us, write "
          f"{per['public write']:.1f} us; view read {per['view read']:.1f} us, write "
          f"{per['view write']:.1f} us per access ({d_in} values); four accesses per step "
          f"(two reads, two writes) save {2 * (public - direct) / 1000:.3f} ms per step, "
          f"{2 * (public - direct):.0f} ms per 1000 steps")


def main(argv=None):
    """Print what each measure buys, in ms."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    code_objects(rng, args.repeats)
    collection(rng, args.repeats)
    direct_calls(rng, max(3, args.repeats // 5))
    compiled_products(rng, max(3, args.repeats // 5))
    views(rng, args.repeats)
    print("order_summed_updaters, CODEGEN_TARGETS: correctness and no global preferences, "
          "0 ms")


if __name__ == "__main__":
    main()
