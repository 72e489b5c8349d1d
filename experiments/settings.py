"""One-line meanings of the settings the experiments share (``dinv run NAME --help``).

Every experiment module keeps a ``DESCRIPTIONS`` dict beside its ``DEFAULTS``:
one line per setting, what it means and in which unit. The settings of the
circuits (Euler steps, population models, PID gains, settling tolerance) mean
the same in every experiment and are described once here.
"""

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

RINIT_DESCRIPTION = ("options of the R-Init stabilisation of random feedback "
                     "(target spectral abscissa, optimiser; dinv.models.stabilise)")
