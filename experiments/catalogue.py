"""Names the command line shows without importing numpy, Brian2 or matplotlib.

``dinv --help``, ``dinv list`` and ``dinv show`` answer in a fraction of a
second because they import none of these. The population models live in
`dinv.circuits` (Brian2 equations); listing them from there would load Brian2
(1-2 s) for a command that simulates nothing, so `BUILT_IN_POPULATIONS` holds
the name, kind and description of each model the package registers, and
``tests/test_cli_startup.py`` checks that it matches
`dinv.circuits.POPULATION_MODELS` (a change there fails the test until this
table follows it). `DATASETS` is the home of the data sets' names, which the
loaders (`dinv.experiments.datasets`, numpy) and ``--dataset`` share.
"""

BUILT_IN_POPULATIONS = (
    ("rate-system", "system",
     "linear rate system, Eq. (5): tau d(delta)/dt = -delta + B u"),
    ("rate-controller", "controller",
     "leaky-integral controller, Eq. (8): tau du/dt = -alpha u + W delta - delta_l"),
    ("pid-controller", "controller",
     "PID controller, Eq. (7): k_p=0, k_d=0 tau_c, derivatives filtered with tau_d=1 tau_c"),
    ("dfc-controller", "controller",
     "direct feedback controller (DFC): tau du_i/dt = e - alpha u_i, u = u_i + k_p e, "
     "k_p=1.5"),
    ("lif", "system or controller",
     "LIF ensemble with decoders (NEF), 64 neurons/dim"),
    ("scn", "system or controller",
     "spike-coding network (Boerlin et al. 2013), 32 neurons/dim"),
)
"""(name, kind, description) of every population model `dinv.circuits` registers."""

DATASETS = ("mnist", "fashion-mnist", "digits", "mnist-5k")
"""Names accepted by `dinv.experiments.datasets.load_dataset` (``--dataset``)."""
