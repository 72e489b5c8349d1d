"""The numpy loop of a spiking layer pair and the Brian2 pair built from Brian2 objects alone.

The numpy loop (`dinv.spiking_reference`) is checked against the closed form
(Eq. 10); the Brian2 pair (`dinv.circuits.standalone`) against the numpy loop,
spike for spike, in runtime mode here and, in the slow test, under
``cpp_standalone`` in a subprocess (built once, rerun with new weights).
"""

import os

import numpy as np
import pytest

from dinv.analysis.metrics import vector_angle
from dinv.circuits.standalone import StandalonePair, matrix_to_weights, run_standalone
from dinv.errors import InputError
from dinv.spiking_reference import make_population, simulate_pair, steady_radius
from dinv.theory import layer_steady_state, steady_control

ALPHA = 0.1


def reference_case(seed=0, d_out=10, d_in=20):
    """The study's layer pair: contracting 20 <- 10, B = -W^T, with its closed form."""
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((d_out, d_in)) / np.sqrt(d_in)
    target = rng.standard_normal(d_out)
    delta = layer_steady_state(W, -W.T, target[None], ALPHA)[0]
    u = steady_control(W, -W.T, target[None], ALPHA)[0]
    return W, -W.T, target, delta, u


def populations(kinds, delta, u, neurons_per_dim=8, **parameters):
    """(system, controller) of the given kinds, radii from the closed form."""
    return (make_population(kinds[0], len(delta), neurons_per_dim, steady_radius(delta), rng=1,
                            **parameters),
            make_population(kinds[1], len(u), neurons_per_dim, steady_radius(u), rng=2,
                            **parameters))


def test_rate_loop_settles_to_the_closed_form():
    """Rate populations: the Euler loop's fixed point is Eq. (10) (and u* of Eq. 13)."""
    W, B, target, delta, u = reference_case()
    system, controller = populations(("rate", "rate"), delta, u)
    run = simulate_pair(W, B, target, ALPHA, system, controller, dt=1e-4, duration=1.5,
                        reference=(delta, u))
    assert np.allclose(run.system.final, delta, rtol=0, atol=1e-7 * np.abs(delta).max())
    assert np.allclose(run.controller.final, u, rtol=0, atol=1e-7 * np.abs(u).max())
    assert run.system.rms_error < 1e-6 and run.system.spike_counts is None


def test_scn_pair_is_near_the_closed_form():
    """Both populations SCNs at 8 neurons per dimension: within a degree of Eq. (10)
    after settling, at moderate rates."""
    W, B, target, delta, u = reference_case()
    system, controller = populations(("scn", "scn"), delta, u)
    run = simulate_pair(W, B, target, ALPHA, system, controller, dt=2e-5, duration=0.4,
                        reference=(delta, u))
    assert vector_angle(run.system.mean, delta) < 1.0
    assert vector_angle(run.controller.mean, u) < 1.0
    assert run.system.rms_error < 0.2
    for pop in (run.system, run.controller):
        assert 1.0 < pop.mean_rate_hz < 100.0
        assert pop.spikes == pop.spike_counts.sum() > 0


def test_lif_pair_is_near_the_closed_form():
    W, B, target, delta, u = reference_case()
    system, controller = populations(("lif", "lif"), delta, u, neurons_per_dim=32)
    run = simulate_pair(W, B, target, ALPHA, system, controller, dt=1e-4, duration=0.5)
    assert vector_angle(run.system.mean, delta) < 10.0
    assert 1.0 < run.system.mean_rate_hz < 100.0


def test_same_seed_same_spikes():
    """With voltage noise, a seed fixes every spike; another seed changes them."""
    W, B, target, delta, u = reference_case(d_out=3, d_in=5)
    system, controller = populations(("scn", "scn"), delta, u, noise=0.5)
    kwargs = dict(dt=2e-5, duration=0.05)
    one = simulate_pair(W, B, target, ALPHA, system, controller, seed=3, **kwargs)
    two = simulate_pair(W, B, target, ALPHA, system, controller, seed=3, **kwargs)
    other = simulate_pair(W, B, target, ALPHA, system, controller, seed=4, **kwargs)
    assert np.array_equal(one.system.spike_counts, two.system.spike_counts)
    assert np.array_equal(one.system.mean, two.system.mean)
    assert not np.array_equal(one.system.spike_counts, other.system.spike_counts)


@pytest.mark.parametrize("kinds", [("rate", "rate"), ("scn", "scn"), ("scn", "rate")])
def test_mirrored_targets_give_mirrored_readouts(kinds):
    """delta_l and -delta_l: mirrored readouts (exactly for rates; within the coding
    error for SCNs, whose ON and OFF neurons differ; a LIF ensemble's ON and OFF halves
    differ more, its fixed decoding error is not symmetric)."""
    W, B, target, delta, u = reference_case(d_out=3, d_in=5)
    system, controller = populations(kinds, delta, u, neurons_per_dim=16)
    kwargs = dict(dt=2e-5, duration=0.3)
    plus = simulate_pair(W, B, target, ALPHA, system, controller, **kwargs)
    minus = simulate_pair(W, B, -target, ALPHA, system, controller, **kwargs)
    if kinds == ("rate", "rate"):
        assert np.array_equal(plus.system.mean, -minus.system.mean)
    else:
        assert vector_angle(plus.system.mean, -minus.system.mean) < 3.0
        scale = np.linalg.norm(delta)
        assert np.linalg.norm(plus.system.mean + minus.system.mean) < 0.05 * scale


def test_reference_refuses_bad_input():
    W, B, target, delta, u = reference_case(d_out=3, d_in=5)
    system, controller = populations(("scn", "scn"), delta, u)
    with pytest.raises(InputError, match="shape"):
        simulate_pair(W, B.T, target, ALPHA, system, controller)
    with pytest.raises(InputError, match="dimensions"):
        simulate_pair(W, B, target, ALPHA, controller, system, duration=1e-3)
    with pytest.raises(InputError, match="kind"):
        make_population("poisson", 3)


def test_dense_weights_round_trip():
    """Synapse (i -> j) of a dense pathway carries M[j, i]."""
    W, _B, _target, delta, u = reference_case(d_out=3, d_in=5)
    system, controller = populations(("rate", "rate"), delta, u)
    pair = StandalonePair(3, 5, system, controller, dt=1e-4, duration=1e-3)
    pair.W.w = matrix_to_weights(W)
    assert np.array_equal(np.asarray(pair.W.w[:]), W[pair.W.j[:], pair.W.i[:]])


def _compare(ref, run, atol=1e-10):
    for name in ("system", "controller"):
        a, b = getattr(ref, name), getattr(run, name)
        assert np.allclose(a.trace, b.trace, rtol=0, atol=atol)
        assert np.allclose(a.mean, b.mean, rtol=0, atol=atol)
        if a.spike_counts is not None:
            assert np.array_equal(a.spike_counts, b.spike_counts)


@pytest.mark.parametrize("kinds", [("scn", "lif"), ("lif", "scn")])
def test_runtime_brian2_pair_equals_the_numpy_loop(kinds):
    """Runtime mode, no noise: the same spikes, neuron by neuron, and the same readouts
    at every step (to rounding) as the numpy loop; a second run from rest repeats the
    first."""
    W, B, target, delta, u = reference_case(d_out=4, d_in=6)
    system, controller = populations(kinds, delta, u)
    kwargs = dict(dt=2e-5, duration=0.03, record_every=1)
    ref = simulate_pair(W, B, target, ALPHA, system, controller, reference=(delta, u),
                        **kwargs)
    pair = StandalonePair(4, 6, system, controller, **kwargs)
    run = pair.run(W, B, target, ALPHA, reference=(delta, u))
    assert ref.system.spikes > 10 and ref.controller.spikes > 10
    _compare(ref, run)
    assert run.system.rms_error == pytest.approx(ref.system.rms_error, rel=1e-9)
    again = pair.run(W, B, target, ALPHA, reference=(delta, u))
    assert np.array_equal(again.system.trace, run.system.trace)


@pytest.mark.slow
def test_standalone_reruns_with_new_weights_without_recompiling(tmp_path):
    """cpp_standalone in a subprocess: compiled once, then rerun with other weights,
    targets and radii; each run equals the runtime pair and the numpy loop."""
    W, B, target, delta, u = reference_case(d_out=4, d_in=6)
    system, controller = populations(("scn", "lif"), delta, u)
    W2 = 1.2 * W
    delta2 = layer_steady_state(W2, -W2.T, -target[None], ALPHA)[0]
    u2 = steady_control(W2, -W2.T, -target[None], ALPHA)[0]
    cases = [dict(W=W, B=B, target=target, alpha=ALPHA, reference=(delta, u)),
             dict(W=W2, B=-W2.T, target=-target, alpha=ALPHA, reference=(delta2, u2),
                  radius=(steady_radius(delta2), steady_radius(u2)))]
    kwargs = dict(dt=2e-5, duration=0.03, record_every=1)
    runs, timings = run_standalone(dict(d_out=4, d_in=6, system=system, controller=controller,
                                        **kwargs), cases, directory=str(tmp_path))
    binary = tmp_path / "main"
    assert binary.is_file() and len(timings["runs"]) == 2
    assert max(timings["runs"]) < timings["compile"] / 5
    pair = StandalonePair(4, 6, system, controller, **kwargs)
    for case, run in zip(cases, runs):
        radius = case.get("radius", (system.radius, controller.radius))
        runtime = pair.run(**case)
        _compare(runtime, run)
        ref = simulate_pair(case["W"], case["B"], case["target"], ALPHA,
                            system.__class__(system.parameters, radius[0]),
                            controller.__class__(controller.parameters, radius[1]),
                            reference=case["reference"], **kwargs)
        _compare(ref, run)
    assert not np.allclose(runs[0].system.mean, runs[1].system.mean)
    assert os.path.getmtime(binary) < os.path.getmtime(tmp_path / "results")
