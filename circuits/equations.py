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
