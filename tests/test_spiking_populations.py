"""Spiking populations (``scn``, ``lif``) as any population of any circuit.

Small circuits (a few units, 16-32 neurons per dimension, 10^4 steps) settle
close to the closed forms of their rate counterparts (Eqs. 10, 17), alone or
mixed with rate populations; the reference case of issue 10 at full size is
in the slow tests. Settled states are time averages of the readouts over the
last fifth of a run, so these settles must not warn (`NotSettledWarning` is
an error in the test suite).
"""

import numpy as np
import pytest
from brian2 import ms

from dinv.circuits import (
    POPULATION_MODELS,
    LayerCircuit,
    SettleOptions,
    chain_radii,
    get_population_model,
    layer_radii,
    lif_population,
    scn_population,
    settle_layer,
)
from dinv.circuits.chains import settle_chain
from dinv.errors import InputError, NotSettledWarning
from dinv.theory import chain_steady_state, layer_steady_state, loop_steady_state

DT = 0.002
"""Euler step in units of tau (0.02 ms at 10 ms): what the SCN defaults need."""

STEPS = 10000
"""20 tau: the small test problems (alpha 0.5) settle in well under half of it."""

ALPHA = 0.5


def angle_deg(a, b):
    a, b = np.ravel(a), np.ravel(b)
    cos = a @ b / (np.linalg.norm(a) * np.linalg.norm(b))
    return float(np.degrees(np.arccos(np.clip(cos, -1.0, 1.0))))


def layer_case(seed=0, d_out=3, d_in=6):
    rng = np.random.default_rng(seed)
    W = rng.normal(0.0, np.sqrt(1.0 / d_out), (d_out, d_in))
    delta = rng.normal(0.0, 1.0, (1, d_out))
    return W, -W.T, delta


def closed_form(W, B, delta, alpha=ALPHA):
    return layer_steady_state(W[None], B[None], delta[None], alpha)


def spiking_options(system, controller, **changes):
    return SettleOptions(system=system, controller=controller, dt=DT,
                         **{"steps": STEPS, **changes})


def settle_pair(system, controller, seed=0, sign=1.0, silence=0.0, **changes):
    W, B, delta = layer_case(seed)
    circuit = LayerCircuit(3, 6, options=spiking_options(system, controller, **changes))
    if silence:
        circuit.silence(silence, seed=1)
    result = circuit.settle(W, B, sign * delta, ALPHA,
                            radius=layer_radii(W, B, delta, ALPHA))
    return result, closed_form(W, B, sign * delta)


def test_registry_resolves_both_kinds():
    """`system='scn'` and `controller='scn'` pick the variant of the right kind."""
    for name in ("scn", "lif"):
        assert name in POPULATION_MODELS
        for kind in ("system", "controller"):
            model = get_population_model(name, kind)
            assert model.kind == kind and model.spiking
    options = SettleOptions(system="scn", controller="lif")
    assert options.system == scn_population("system")
    assert options.controller == lif_population("controller")
    assert not get_population_model("rate-system", "system").spiking


def test_scn_layer_pair_settles_to_closed_form():
    """SCN system and controller: time-averaged readout within a degree, rates 1-100 Hz."""
    result, ref = settle_pair(scn_population("system", 16), scn_population("controller", 16))
    assert angle_deg(result.delta, ref) < 1.0
    assert np.linalg.norm(result.delta - ref) / np.linalg.norm(ref) < 0.03
    assert result.residual.max() < 1e-3
    for stats in result.spiking.values():
        assert 1.0 < stats["mean_rate_hz"] < 100.0
        assert stats["spikes"] == stats["counts"].sum() > 0
        assert stats["max_rate_hz"] >= stats["mean_rate_hz"]
    assert result.spiking["system"]["counts"].shape == (1, 1, 6, 16)
    assert result.spiking["controller"]["counts"].shape == (1, 1, 3, 16)


def test_lif_layer_pair_settles_near_closed_form():
    """LIF ensembles (NEF): within a few degrees at 32 neurons per dimension."""
    result, ref = settle_pair(lif_population("system", 32), lif_population("controller", 32))
    assert angle_deg(result.delta, ref) < 6.0
    for stats in result.spiking.values():
        assert 1.0 < stats["mean_rate_hz"] < 100.0


@pytest.mark.parametrize("system, controller", [
    (scn_population("system", 16), "rate-controller"),
    ("rate-system", scn_population("controller", 16)),
    (lif_population("system", 32), "rate-controller"),
    ("rate-system", lif_population("controller", 32)),
])
def test_mixed_circuits(system, controller):
    """A spiking system with a rate controller, and the reverse."""
    result, ref = settle_pair(system, controller)
    assert angle_deg(result.delta, ref) < 5.0
    spiking = {"system"} if not isinstance(system, str) else {"controller"}
    assert set(result.spiking) == spiking


def test_sequential_chain_with_spiking_populations():
    """A 3-layer sequential chain of SCN populations settles to Eq. (17)."""
    rng = np.random.default_rng(3)
    widths = (2, 6, 4, 2)
    weights = [rng.normal(0.0, np.sqrt(1.0 / widths[l + 1]), (1, widths[l + 1], widths[l]))
               for l in range(3)]
    feedback = [-np.swapaxes(w, 1, 2) for w in weights[1:]]
    delta = rng.normal(0.0, 1.0, (1, 1, 2))
    radius = chain_radii(weights, feedback, delta, ALPHA)
    assert set(radius) == {"u3", "d2", "u2", "d1"}
    result = settle_chain(weights, feedback, delta, ALPHA,
                          options=spiking_options(scn_population("system", 16),
                                                  scn_population("controller", 16)),
                          radius=radius)
    ref = chain_steady_state(weights[1:], feedback, delta, ALPHA)
    for got, want in zip(result.deltas, ref):
        assert angle_deg(got, want) < 2.0
    assert set(result.spiking) == {"u3", "d2", "u2", "d1"}
    # Each population's rates are over its own phase (10^4 steps of 0.02 ms).
    assert all(s["duration_s"] == pytest.approx(0.2) for s in result.spiking.values())


@pytest.mark.parametrize("architecture", ["repeat", "single-loop"])
def test_other_architectures_with_spiking_populations(architecture):
    """Repeat layer and single loop (spiking relays) settle to their rate steady state."""
    rng = np.random.default_rng(5)
    widths = (2, 4, 3, 2)
    weights = [rng.normal(0.0, np.sqrt(1.0 / widths[l + 1]), (1, widths[l + 1], widths[l]))
               for l in range(3)]
    delta = rng.normal(0.0, 1.0, (1, 1, 2))
    scn = scn_population("system", 16), scn_population("controller", 16)
    if architecture == "repeat":
        feedback = [-np.swapaxes(w, 1, 2) for w in weights[1:]]
        ref = chain_steady_state(weights[1:], feedback, delta, ALPHA)
        radius = chain_radii(weights, feedback, delta, ALPHA)
    else:
        feedback = [-np.swapaxes(weights[2] @ weights[1], 1, 2)]
        ref, u = loop_steady_state(weights[1:], feedback[0], delta, ALPHA)
        radius = {"h1": 1.5 * np.abs(ref[0]).max(), "h2": 1.5 * np.abs(ref[1]).max(),
                  "u3": 1.5 * np.abs(u).max()}
    result = settle_chain(weights, feedback, delta, ALPHA, architecture=architecture,
                          options=spiking_options(*scn, relay=scn[0], steps=15000),
                          radius=radius)
    for got, want in zip(result.deltas, ref):
        assert angle_deg(got, want) < 3.0
    assert len(result.spiking) == (4 if architecture == "repeat" else 3)


def test_scn_pid_controller_keeps_the_steady_state():
    """PID gains in an SCN controller's dynamics (Eq. 7) leave Eq. (10) in place."""
    result, ref = settle_pair(scn_population("system", 16),
                              scn_population("controller", 16, kp=0.5, kd=0.1))
    assert angle_deg(result.delta, ref) < 1.0


def test_mirrored_readouts():
    """delta and -delta give mirrored settled readouts (signed decoders, ON and OFF)."""
    up, ref = settle_pair(scn_population("system", 16), scn_population("controller", 16))
    down, _ = settle_pair(scn_population("system", 16), scn_population("controller", 16),
                          sign=-1.0)
    scale = np.abs(ref).max()
    assert np.abs(up.delta + down.delta).max() < 0.02 * scale
    assert np.abs(up.u + down.u).max() < 0.02 * np.abs(up.u).max()


def test_silencing_a_quarter_barely_matters():
    """Silencing 25 % of each SCN population at most doubles its small angle."""
    full, ref = settle_pair(scn_population("system", 16), scn_population("controller", 16))
    part, _ = settle_pair(scn_population("system", 16), scn_population("controller", 16),
                          silence=0.25)
    assert angle_deg(part.delta, ref) <= 2 * angle_deg(full.delta, ref) + 0.1
    stats = part.spiking["system"]
    assert stats["silenced"] == 6 * 4  # 2 of 8 neurons of each sign, per dimension
    counts = stats["counts"].reshape(6, 16)
    assert (counts == 0).sum(axis=1).min() >= 4


def test_same_seed_same_spikes():
    """Neurons and voltage noise come from the seed: same seed, same spikes. (Noise 0.01:
    the threshold is about 0.75 / K decoders, so noise 0.1 at K = 16 already drives the
    neurons to 230 Hz.)"""
    runs = [settle_pair(scn_population("system", 16, seed=seed, noise=0.01),
                        scn_population("controller", 16, seed=seed, noise=0.01))[0]
            for seed in (4, 4, 5)]
    first, again, other = runs
    np.testing.assert_array_equal(first.delta, again.delta)
    np.testing.assert_array_equal(first.spiking["system"]["counts"],
                                  again.spiking["system"]["counts"])
    assert not np.array_equal(first.spiking["system"]["counts"],
                              other.spiking["system"]["counts"])


def test_circuit_reruns_from_rest():
    """A built spiking circuit reruns from rest: the same settle twice is identical."""
    W, B, delta = layer_case()
    circuit = LayerCircuit(3, 6, options=spiking_options(scn_population("system", 16),
                                                         scn_population("controller", 16)))
    radius = layer_radii(W, B, delta, ALPHA)
    first = circuit.settle(W, B, delta, ALPHA, radius=radius)
    second = circuit.settle(W, B, delta, ALPHA, radius=radius)
    np.testing.assert_array_equal(first.delta, second.delta)
    np.testing.assert_array_equal(first.spiking["controller"]["counts"],
                                  second.spiking["controller"]["counts"])


def test_settle_layer_with_registered_names():
    """`settle_layer(system='scn', controller='scn')` with its defaults (32 per dim)."""
    W, B, delta = layer_case()
    got = settle_layer(W, B, delta, ALPHA, system="scn", controller="scn", dt=DT, steps=STEPS,
                       radius=layer_radii(W, B, delta, ALPHA))
    assert got.shape == (1, 6)
    assert angle_deg(got, closed_form(W, B, delta)) < 1.0


@pytest.mark.parametrize("make, message", [
    (lambda: scn_population("system", 1), "neurons_per_dim"),
    (lambda: lif_population("controller", 1.5), "neurons_per_dim"),
    (lambda: scn_population("relay"), "kind"),
    (lambda: scn_population("system", tau_readout=-1 * ms), "tau_readout"),
    (lambda: scn_population("system", kp=1.0), "controllers"),
    (lambda: lif_population("system", max_rates=(100.0, 600.0)), "max_rates"),
])
def test_bad_parameters(make, message):
    with pytest.raises(InputError, match=message):
        make()


def test_clear_errors_in_circuits():
    W, B, delta = layer_case()
    scn = scn_population("system", 16), scn_population("controller", 16)
    with pytest.raises(InputError, match=r"too coarse.*use dt <= 0\.002"):
        LayerCircuit(3, 6, options=SettleOptions(system=scn[0], controller=scn[1]))
    circuit = LayerCircuit(3, 6, options=spiking_options(*scn, steps=100))
    with pytest.raises(InputError, match="positive"):
        circuit.settle(W, B, delta, ALPHA, radius={"system": -1.0})
    with pytest.raises(InputError, match="no blocks"):
        circuit.settle(W, B, delta, ALPHA, radius={"sytem": 1.0})
    with pytest.raises(InputError, match="stop_tol"):
        circuit.settle(W, B, delta, ALPHA, stop_tol=1e-3)
    with pytest.raises(InputError, match="fraction"):
        circuit.silence(1.0)
    with pytest.raises(InputError, match="average_fraction"):
        SettleOptions(average_fraction=0.0)


def test_short_run_warns():
    """A spiking circuit still drifting at the end of its run warns (its residual
    is the drift of the averaged readout beyond spike noise)."""
    with pytest.warns(NotSettledWarning, match="not settled"):
        settle_pair(scn_population("system", 16), scn_population("controller", 16), steps=1500)


def test_radius_scales_representation():
    """Targets beyond the radius are represented poorly; a radius from the closed
    form (`layer_radii`) restores the precision."""
    W, B, delta = layer_case()
    big = 20.0 * delta
    models = lif_population("system", 32), lif_population("controller", 32)
    circuit = LayerCircuit(3, 6, options=spiking_options(*models))
    ref = closed_form(W, B, big)
    poor = circuit.settle(W, B, big, ALPHA)  # radius 1: saturated neurons
    good = circuit.settle(W, B, big, ALPHA, radius=layer_radii(W, B, big, ALPHA))
    assert angle_deg(good.delta, ref) < 6.0
    err = lambda r: np.linalg.norm(r.delta - ref) / np.linalg.norm(ref)  # noqa: E731
    assert err(good) < 0.5 * err(poor)
    radii = layer_radii(W, B, big, ALPHA, per_unit=True)
    assert radii["system"].shape == (1, 6) and radii["controller"].shape == (1, 3)


# ----------------------------------------------------------------- slow
def reference_case():
    rng = np.random.default_rng(0)
    W = rng.normal(0.0, np.sqrt(1 / 10), (10, 20))
    return W, -W.T, rng.normal(0.0, 1.0, (1, 10)), 0.1


def settle_reference(model, per_dim, silence=0.0):
    """Issue 10's reference case: 20 <- 10, alpha 0.1, 40 tau, last fifth averaged."""
    W, B, delta, alpha = reference_case()
    make = scn_population if model == "scn" else lif_population
    circuit = LayerCircuit(10, 20, options=SettleOptions(
        system=make("system", per_dim), controller=make("controller", per_dim), dt=DT,
        steps=20000))
    if silence:
        circuit.silence(silence, seed=1)
    result = circuit.settle(W, B, delta, alpha, radius=layer_radii(W, B, delta, alpha))
    return result, angle_deg(result.delta, closed_form(W, B, delta, alpha))


@pytest.mark.slow
def test_reference_scn_within_a_degree_and_robust():
    result, angle = settle_reference("scn", 32)
    assert angle < 1.0
    for stats in result.spiking.values():
        assert 1.0 < stats["mean_rate_hz"] < 100.0
    # Silencing 25 %: measured 0.90-1.76x the (tiny, edge-dominated) angle over
    # 4 x 3 seeds, 1.20x on average; every one stays far within a degree.
    _, silenced = settle_reference("scn", 32, silence=0.25)
    assert silenced < 0.25


@pytest.mark.slow
def test_reference_lif_within_three_degrees():
    result, angle = settle_reference("lif", 64)
    assert angle < 3.0
    for stats in result.spiking.values():
        assert 1.0 < stats["mean_rate_hz"] < 100.0
