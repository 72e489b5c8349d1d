"""Brian2 equation templates of the spiking populations (`dinv.circuits.spiking`).

A spiking population is two groups (the parameters are those of
`dinv.spiking`, whose module docstring states the model):

- a **representation** group of one unit per represented dimension (for every
  problem and sample), with the same roles as a rate population: the readout
  ``xhat`` that couplings read, the input ``I_in`` they write, and for a
  controller its ``target`` and leak ``alpha``; plus the per-unit ``radius``
  (the range represented), a slow copy ``xbar`` of the readout (judged at the
  checks of a run, time constant ``tau_filter``) and the running integral
  ``xsum`` of the readout while ``averaging`` is 1 (the settled value a
  result reports is ``xsum`` over the window's length);
- a **neuron** group of ``neurons_per_dim`` neurons per unit, reading their
  unit's quantities through linked variables (``..._rep``); a spike makes
  the unit's readout jump (``on_pre`` of a ``Synapses`` object: `DECODE`, or
  for the SCN the sequential rule `SCN_ON_PRE`).

The circuits (`dinv.circuits.spiking`) and the layer pair built from Brian2
objects alone (`dinv.circuits.standalone`) both build their spiking
populations from these strings; `dinv.spiking_reference` mirrors them in
numpy.

Subexpressions of the representation group that the neurons read are in
units of the radius (``coding_error``, ``encoded``).
"""



def running_average(readout):
    """The running integral ``xsum`` of ``readout`` while ``averaging`` is 1 (a result
    reports ``xsum`` over the window's length)."""
    return f"dxsum/dt = averaging * {readout} : second\naveraging : 1\n"


AVERAGING = """
dxbar/dt = (xhat - xbar) / tau_filter : 1
radius : 1 (constant)
""" + running_average("xhat")
"""Lines every representation group has: the slow copy, the running integral, the radius."""

SCN_SYSTEM = """
dxhat/dt = -xhat / tau_readout : 1
dy/dt = (-xhat + I_in) / tau_system : 1
coding_error = (y - xhat) / radius : 1
I_in : 1
tau_system : second (shared, constant)
""" + AVERAGING
"""SCN system: the ideal state y integrates Eq. (5) at the readout,
``tau_s dy/dt = -xhat + B u``; the neurons keep xhat near y."""

SCN_CONTROLLER = """
dxhat/dt = -xhat / tau_readout : 1
dy/dt = (-alpha * xhat + I_in - target) / tau_controller : 1
coding_error = (y - xhat) / radius : 1
I_in : 1
target : 1
alpha : 1 (constant)
tau_controller : second (shared, constant)
""" + AVERAGING
"""SCN controller: y integrates Eq. (8) at the readout,
``tau_c dy/dt = -alpha uhat + W delta_{l-1} - delta_l``."""

SCN_PID_CONTROLLER = """
dxhat/dt = -xhat / tau_readout : 1
dy/dt = (-alpha * xhat + I_in - target) / tau_controller + k_p * rate_e + k_d * tau_controller * accel_e : 1
de_f/dt = rate_e : 1
drate_f/dt = accel_e : 1/second
rate_e = (I_in - target - e_f) / (filter_ratio * tau_controller) : 1/second
accel_e = (rate_e - rate_f) / (filter_ratio * tau_controller) : 1/second**2
coding_error = (y - xhat) / radius : 1
I_in : 1
target : 1
alpha : 1 (constant)
k_p : 1 (shared, constant)
k_d : 1 (shared, constant)
filter_ratio : 1 (shared, constant)
tau_controller : second (shared, constant)
""" + AVERAGING
"""SCN PID controller (Eq. 7): y integrates the PID dynamics of
`dinv.circuits.populations.pid_controller` (same filtered derivatives of
e = W delta_{l-1} - delta_l) at the readout."""

SCN_NEURONS = """
V = decoder * coding_error_rep - mu * r : 1
dr/dt = -r / tau_readout : 1
decoder : 1 (constant)
active : 1
count : integer
ready : second
coding_error_rep : 1 (linked)
"""
"""SCN neurons: voltage = projected coding error minus the rate cost; r is the
neuron's own filtered spike train; ``ready``: the end of its refractory
period (`SCN_THRESHOLD`)."""

SCN_NOISE = """
deta/dt = -eta / tau_noise + sqrt(2 / tau_noise) * xi : 1
"""
"""Voltage noise of SCN neurons: eta, a unit Ornstein-Uhlenbeck process
(correlation time tau_noise), enters V scaled by sigma (`scn_neurons`)."""


def scn_neurons(noise=False):
    """The SCN neurons' equations: `SCN_NEURONS`, with ``+ sigma * eta`` in V and
    `SCN_NOISE` when ``noise``."""
    if not noise:
        return SCN_NEURONS
    return SCN_NEURONS.replace("- mu * r : 1", "- mu * r + sigma * eta : 1") + SCN_NOISE


SCN_THRESHOLD = "active > 0 and t >= ready and V > (decoder**2 + mu) / 2"
"""A *candidate* spike: an active neuron, past its refractory period, above
threshold with the readout at the start of the step. Whether it spikes is
decided in `SCN_ON_PRE`."""

SCN_ON_PRE = """
fired = int(decoder_pre * coding_error_post - mu * r_pre{noise} > (decoder_pre**2 + mu) / 2)
xhat_post += radius_post * decoder_pre * fired
r_pre += fired
count_pre += fired
ready_pre += fired * (t + t_ref - ready_pre)
"""
"""The sequential spike rule (``{noise}``: `scn_on_pre` fills it in). The
decoding synapses (one per neuron, onto its unit) take the candidates of a
step one after the other, in neuron index order, and check each once more
against its unit's readout as the spikes before it in this step have moved
it (``coding_error_post`` is evaluated anew for every synapse): only a
candidate still above threshold spikes, making the readout jump by ``R D``
and counting the spike in r, ``count`` and its refractory ``ready``. So a
spike lowers the other neurons' voltages at once, as the instantaneous fast
connections of an SCN do, and the rule is deterministic. Checking all
candidates against the same readout instead lets neurons with nearby
thresholds fire together, the readout overshoots past the opposite
neurons' thresholds and ON and OFF neurons answer in volleys. Needs the
synapses' code to run synapse by synapse: Brian2's Cython target and
``cpp_standalone`` do (numpy falls back to a slow Python loop)."""


def scn_on_pre(noise=False):
    """`SCN_ON_PRE` with the voltage noise (``+ sigma * eta_pre``) when ``noise``."""
    return SCN_ON_PRE.format(noise=" + sigma * eta_pre" if noise else "")


SCN_RESET = ""
"""Nothing is reset at the threshold: a candidate's spike is counted in `SCN_ON_PRE`."""

LIF_SYSTEM = """
dxhat/dt = -xhat / tau_synapse : 1
encoded = ((1 - tau_synapse / tau_system) * xhat + (tau_synapse / tau_system) * I_in) / radius : 1
I_in : 1
tau_system : second (shared, constant)
""" + AVERAGING
"""LIF system through an exponential synapse (NEF): the neurons encode
``(1 - tau/tau_s) xhat + (tau/tau_s) B u`` so that on average
``tau_s dxhat/dt = -xhat + B u`` (Eq. 5)."""

LIF_CONTROLLER = """
dxhat/dt = -xhat / tau_synapse : 1
encoded = ((1 - alpha * tau_synapse / tau_controller) * xhat + (tau_synapse / tau_controller) * (I_in - target)) / radius : 1
I_in : 1
target : 1
alpha : 1 (constant)
tau_controller : second (shared, constant)
""" + AVERAGING
"""LIF controller: encodes ``(1 - alpha tau/tau_c) uhat + (tau/tau_c) e`` (Eq. 8)."""

LIF_NEURONS = """
dv/dt = (-v + gain * encoder * encoded_rep + bias) / tau_rc : 1 (unless refractory)
gain : 1 (constant)
bias : 1 (constant)
encoder : 1 (constant)
active : 1
count : integer
encoded_rep : 1 (linked)
"""
"""LIF neurons (threshold 1, reset 0), input current ``gain e s / R + bias``."""

LIF_THRESHOLD = "active > 0 and v > 1"
LIF_RESET = "v = 0\ncount += 1"

DECODE = "xhat_post += radius_post * w"
"""A spike's jump of its unit's readout: ``w`` is the neuron's decoder (SCN) or
decoder / tau_synapse (LIF), in units of the radius."""
