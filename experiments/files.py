"""The names of the files a run writes into its output folder.

Kept apart from the modules that write them, so that the commands that only
read a folder (``dinv show``) or look at it before a run start without
importing numpy, Brian2 or matplotlib.
"""

RESULTS = "results.json"
"""File name of a run's record inside its output folder."""

FIGURE = "figure.png"
"""File name of a run's figure inside its output folder."""

CHECKPOINT = "checkpoint.npz"
"""File name of the checkpoint inside a run's output folder."""
