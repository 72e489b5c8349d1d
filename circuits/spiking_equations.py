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
  the unit's readout jump through the linked ``xhat_rep``, written by the
  neuron's reset (`DECODE` after an NEF neuron's own reset; for the SCN the
  sequential rule `SCN_RESET`). Brian2's Cython and C++ code runs a reset
  neuron by neuron in index order, so each reset sees the readout as the
  resets before it in the step left it. No ``Synapses`` object is needed:
  per step a population runs three code objects (state update, threshold,
  reset) instead of five (and a Python spike queue); on Brian2's numpy
  target, whose resets are vectorised, the SCN keeps the decoding synapses
  of `SCN_ON_PRE` (run synapse by synapse).

The circuits (`dinv.circuits.scn`, `dinv.circuits.nef`) and the layer pair
built from Brian2 objects alone (`dinv.circuits.standalone`) both build their
spiking populations from these strings; `dinv.spiking_reference` mirrors them
in numpy.

Subexpressions of the representation group that the neurons read are in
units of the radius (``coding_error``, ``encoded``).
"""

from dinv.circuits.equations import CONTROLLER_ROLES, PID_GAINS, PID_TERMS, pid_filters


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

_SCN_CONTROLLER_INPUTS = """
dxhat/dt = -xhat / tau_readout : 1
coding_error = (y - xhat) / radius : 1
I_in : 1""" + CONTROLLER_ROLES + AVERAGING

SCN_LEAKY_INTEGRAL = "(-alpha * xhat + I_in - target) / tau_controller"
"""dy/dt of an SCN controller: Eq. (8) at the readout."""

SCN_CONTROLLER = f"\ndy/dt = {SCN_LEAKY_INTEGRAL} : 1" + _SCN_CONTROLLER_INPUTS
"""SCN controller: y integrates Eq. (8) at the readout,
``tau_c dy/dt = -alpha uhat + W delta_{l-1} - delta_l``."""

SCN_PID_CONTROLLER = (f"\ndy/dt = {SCN_LEAKY_INTEGRAL}{PID_TERMS} : 1"
                      + pid_filters("I_in - target") + PID_GAINS + _SCN_CONTROLLER_INPUTS)
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
xhat_rep : 1 (linked)
radius_rep : 1 (linked)
"""
"""SCN neurons: voltage = projected coding error minus the rate cost; r is the
neuron's own filtered spike train; ``ready``: the end of its refractory
period (`SCN_THRESHOLD`); ``xhat_rep`` and ``radius_rep``: their unit's
readout (written by `SCN_RESET`) and radius."""

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
decided in `SCN_RESET`."""

SCN_RESET = """
fired = int(V > (decoder**2 + mu) / 2)
xhat_rep += radius_rep * decoder * fired
r += fired
count += fired
ready += fired * (t + t_ref - ready)
"""
"""The sequential spike rule. The candidates of a step are reset one after the
other, in neuron index order, and each is checked once more against its unit's
readout as the spikes before it in this step have moved it (``V`` is
evaluated anew, from the linked readout, for every neuron): only a candidate
still above threshold spikes, making the readout jump by ``R D`` and counting
the spike in r, ``count`` and its refractory ``ready``. So a spike lowers the
other neurons' voltages at once, as the instantaneous fast connections of an
SCN do, and the rule is deterministic. Checking all candidates against the
same readout instead lets neurons with nearby thresholds fire together, the
readout overshoots past the opposite neurons' thresholds and ON and OFF
neurons answer in volleys. Needs the reset code to run neuron by neuron:
Brian2's Cython target and ``cpp_standalone`` do; on the numpy target the
SCN decodes through synapses instead (`SCN_ON_PRE`). The voltage noise, when
there is some, is part of ``V``."""

SCN_ON_PRE = """
fired = int(decoder_pre * coding_error_post - mu * r_pre{noise} > (decoder_pre**2 + mu) / 2)
xhat_post += radius_post * decoder_pre * fired
r_pre += fired
count_pre += fired
ready_pre += fired * (t + t_ref - ready_pre)
"""
"""The sequential spike rule of `SCN_RESET` as the ``on_pre`` code of decoding
synapses (one per neuron, onto its unit; ``{noise}``: `scn_on_pre` fills it
in), for Brian2's numpy target: its resets are vectorised, its synapses with
order-dependent code run synapse by synapse (a slow Python loop). The same
arithmetic as `SCN_RESET`, so the same spikes."""


def scn_on_pre(noise=False):
    """`SCN_ON_PRE` with the voltage noise (``+ sigma * eta_pre``) when ``noise``."""
    return SCN_ON_PRE.format(noise=" + sigma * eta_pre" if noise else "")



NEF_SYSTEM = """
dxhat/dt = -xhat / tau_synapse : 1
encoded = ((1 - tau_synapse / tau_system) * xhat + (tau_synapse / tau_system) * I_in) / radius : 1
I_in : 1
tau_system : second (shared, constant)
""" + AVERAGING
"""NEF system through an exponential synapse: the neurons encode
``(1 - tau/tau_s) xhat + (tau/tau_s) B u`` (recurrent transform 1 - tau/tau_s,
input transform tau/tau_s) so that on average ``tau_s dxhat/dt = -xhat + B u``
(Eq. 5)."""

NEF_CONTROLLER = ("""
dxhat/dt = -xhat / tau_synapse : 1
encoded = ((1 - alpha * tau_synapse / tau_controller) * xhat"""
                  """ + (tau_synapse / tau_controller) * (I_in - target)) / radius : 1
I_in : 1
target : 1
alpha : 1 (constant)
tau_controller : second (shared, constant)
""" + AVERAGING)
"""NEF controller: encodes ``(1 - alpha tau/tau_c) uhat + (tau/tau_c) e`` (Eq. 8)."""

NEF_NEURON_LINES = """
gain : {unit} (constant)
bias : {unit} (constant)
encoder : 1 (constant)
active : 1
count : integer
encoded_rep : 1 (linked)
xhat_rep : 1 (linked)
radius_rep : 1 (linked)
w_decode : 1 (constant)
"""
"""Lines the ensemble builder adds to a neuron model (`nef_neurons`): its input
current becomes ``gain * encoder * encoded_rep + bias`` (`NEF_CURRENT`), in the
current's unit; ``active`` gates the threshold (silencing), ``count`` counts
spikes, and a spike adds ``radius_rep * w_decode`` to the unit's readout
``xhat_rep`` (`DECODE`, in the reset)."""

NEF_CURRENT = "{current} = gain * encoder * encoded_rep + bias : {unit}"
"""The input current of an NEF neuron: its encoder times the encoded value of its
unit (in units of the radius), scaled by its gain, plus its bias."""

NEF_CLIPPED_CURRENT = ("{current} = clip(gain * encoder * encoded_rep + bias, current_min, "
                       "current_max) : {unit}")
"""The input current of a neuron with a measured rate curve: as `NEF_CURRENT`, held
within the grid the curve was measured over (``current_min``, ``current_max`` in the
neurons' namespace), where the tuning knows the neuron's rate. Beyond the grid a
neuron without a refractory period would fire ever faster (the readout, and a
controller's integration, would run away), and far below it would take long to
recover."""

NEF_RESERVED = ("gain", "bias", "encoder", "active", "count", "encoded_rep", "xhat_rep",
                "radius_rep", "tau_synapse", "w_decode", "current_min", "current_max")
"""Names the builder adds to a neuron model's equations (and namespace: the linked
``encoded`` needs ``tau_synapse``)."""


def nef_threshold(threshold):
    """A neuron model's threshold, gated by ``active`` (a silenced neuron never spikes)."""
    return f"active > 0 and ({threshold})"


def nef_reset(reset):
    """A neuron model's reset, counting the spike and decoding it into the readout
    (`DECODE`)."""
    return f"{reset}\ncount += 1\n{DECODE}" if reset.strip() else f"count += 1\n{DECODE}"


LIF_NEURON = """
dv/dt = (-v + J) / tau_rc : 1 (unless refractory)
J : 1
"""
"""LIF neuron with input current J (threshold 1, reset 0; `dinv.circuits.nef.lif_neuron`)."""

LIF_THRESHOLD = "v > 1"
LIF_RESET = "v = 0"

DECODE = "xhat_rep += radius_rep * w_decode"
"""An NEF neuron's spike, decoded (in its reset): its unit's readout jumps by the
radius times ``w_decode``, the neuron's decoder / tau_synapse in units of the
radius."""
