"""The settings the experiments share: defaults and one-line meanings.

Every experiment module keeps a ``DEFAULTS`` dict (its protocol) and a
``DESCRIPTIONS`` dict beside it: one line per setting, what it means and in
which unit. The settings of the circuits (Euler steps, population models, PID
gains, settling tolerance) mean the same in every experiment: their defaults
(`CIRCUIT_DEFAULTS`) and meanings (`CIRCUIT_DESCRIPTIONS`) are written once here.
"""

PID_DEFAULTS = {"pid_kp": 0.0, "pid_kd": 0.0, "pid_filter_ratio": 1.0}
"""Gains of ``controller=pid-controller`` (Eq. 7): K_p, K_d (in units of tau_controller)
and tau_d / tau_controller of its derivative filters; scalars (gain matrices:
`dinv.circuits.pid_controller` in Python). Zero gains: the leaky integral of Eq. (8)."""

CIRCUIT_DEFAULTS = {
    "steps": 1000,
    "dt": 0.5,
    # Population models of every circuit, by registered name (`dinv list`).
    "system": "rate-system",
    "controller": "rate-controller",
    **PID_DEFAULTS,
    # A settle whose final residual exceeds settle_tol fell short: counted in
    # results.json ('ignore'), warned about ('warn') or an error ('raise').
    "on_unsettled": "ignore",
    "settle_tol": 1e-3,
}
"""The circuit settings of an experiment that simulates DI: the paper's 1000 Euler steps of
dt = 0.5 tau_system, rate populations, and the settling tolerance."""

CIRCUIT_DESCRIPTIONS = {
    "seed": "random seed: data, order, initial weights and feedback (same seed, same numbers)",
    "models": "the models to run, by name (null: all of the experiment's models)",
    "steps": "Euler steps of every settle of a simulated circuit",
    "dt": "Euler time step of the circuits, in units of tau_system",
    "system": "population model of the circuits' system populations (dinv list shows them)",
    "controller": "population model of the circuits' controllers (dinv list shows them)",
    "pid_kp": "controller=pid-controller: proportional gain K_p (Eq. 7)",
    "pid_kd": "controller=pid-controller: derivative gain K_d, in units of tau_controller",
    "pid_filter_ratio": "tau_d / tau_controller of a PID controller's derivative filters",
    "on_unsettled": "a settle that falls short of settle_tol: 'ignore' (counted in "
                    "results.json), 'warn' or 'raise'",
    "settle_tol": "largest final residual (relative change of the readouts per time "
                  "constant) that counts as settled",
}
"""Meanings of the circuit settings every experiment has."""

STOP_TOL_DESCRIPTION = ("end each settle once its state stops changing by this much "
                        "(null: run all steps)")
"""Meaning of the setting ``stop_tol`` of the experiments that offer it."""

RINIT_DESCRIPTION = ("options of the R-Init stabilisation of random feedback "
                     "(target spectral abscissa, optimiser; dinv.models.stabilise)")
