"""Brian2 equation templates of the dynamic-inversion rate populations.

Every population is a rate population: one state variable per neuron and one
line per quantity, each with its unit. Couplings between populations write
into the input variables (``I_fb``, ``readout``); they never touch states.

``SYSTEM_EQUATIONS``
    The fast system population of layer l-1 (Eq. 5)::

        tau_system * d(delta)/dt = -delta + B u

    ``I_fb`` holds the feedback current ``B u`` from the controller above.

``CONTROLLER_EQUATIONS``
    The slow leaky-integral controller of layer l (Eq. 8)::

        tau_controller * du/dt = -alpha u + W delta_{l-1} - delta_l

    ``readout`` holds the forward transformation ``W delta_{l-1}`` of the
    system below and ``target`` the error ``delta_l`` to be inverted.
    ``alpha`` is per neuron, so circuits with different leaks share a group.

``PID_CONTROLLER_EQUATIONS``
    A PID controller (Eq. 7, K_i = I, K_u = -alpha I)::

        tau_c du/dt = -alpha u + e + k_p tau_c de/dt + k_d tau_c^2 d2e/dt2

    with the controller error ``e = readout - target`` and its derivatives
    filtered: ``e_f`` low-passes e with tau_d = filter_ratio * tau_controller,
    ``rate_e = (e - e_f) / tau_d`` estimates de/dt, ``rate_f`` low-passes it
    with the same tau_d and ``accel_e = (rate_e - rate_f) / tau_d`` estimates
    d2e/dt2. With k_p = k_d = 0 the filters do not enter du/dt (Eq. 8).

``PID_MATRIX_CONTROLLER_EQUATIONS``
    The same controller with gain matrices K_p, K_d (d_l x d_l)::

        tau_c du/dt = -alpha u + e + tau_c pid_drive,
        pid_drive = K_p rate_e + K_d tau_c accel_e

    Matrices couple the units of a sample, which an element-wise equation
    cannot, so ``pid_drive`` is a parameter that the circuit computes before
    every step of the controller (`dinv.circuits.populations.MatrixGains`);
    the filters are the scalar model's.

``DIRECT_CONTROLLER_EQUATIONS``
    The output controller of direct feedback control (Meulemans et al.
    2021): an integral part with a leak and a proportional part::

        tau_c du_i/dt = e - alpha u_i,     u = u_i + k_p e,

    with the controller error ``e = readout - target`` (the circuits' sign:
    its feedback enters with the opposite sign, see `dinv.circuits.chains`).
    u is algebraic in the integral part and the error, which the couplings
    write every step, so it is a parameter that the circuit computes before
    every step of the controller (`dinv.circuits.populations.ProportionalPart`).
"""

SYSTEM_EQUATIONS = """
ddelta/dt = (-delta + I_fb) / tau_system : 1
I_fb : 1
tau_system : second (shared, constant)
"""

CONTROLLER_EQUATIONS = """
du/dt = (-alpha * u + readout - target) / tau_controller : 1
readout : 1
target : 1
alpha : 1 (constant)
tau_controller : second (shared, constant)
"""

PID_CONTROLLER_EQUATIONS = """
du/dt = (-alpha * u + readout - target) / tau_controller + k_p * rate_e + k_d * tau_controller * accel_e : 1
de_f/dt = rate_e : 1
drate_f/dt = accel_e : 1/second
rate_e = (readout - target - e_f) / (filter_ratio * tau_controller) : 1/second
accel_e = (rate_e - rate_f) / (filter_ratio * tau_controller) : 1/second**2
readout : 1
target : 1
alpha : 1 (constant)
k_p : 1 (shared, constant)
k_d : 1 (shared, constant)
filter_ratio : 1 (shared, constant)
tau_controller : second (shared, constant)
"""

PID_MATRIX_CONTROLLER_EQUATIONS = """
du/dt = (-alpha * u + readout - target) / tau_controller + pid_drive : 1
de_f/dt = rate_e : 1
drate_f/dt = accel_e : 1/second
rate_e = (readout - target - e_f) / (filter_ratio * tau_controller) : 1/second
accel_e = (rate_e - rate_f) / (filter_ratio * tau_controller) : 1/second**2
pid_drive : 1/second
readout : 1
target : 1
alpha : 1 (constant)
filter_ratio : 1 (shared, constant)
tau_controller : second (shared, constant)
"""

DIRECT_CONTROLLER_EQUATIONS = """
du_i/dt = (readout - target - alpha * u_i) / tau_controller : 1
u : 1
readout : 1
target : 1
alpha : 1 (constant)
tau_controller : second (shared, constant)
"""
