"""A toy experiment's protocol for the sweep tests (`dinv.experiments.registry.Experiment`
with ``module="sweep_toy"``): its cells succeed, fail, kill their worker or sleep."""

import os
import signal
import time

DEFAULTS = {"seed": 0, "mode": "ok", "marker": "", "sleep": 0.0}
QUICK: dict = {}
DESCRIPTIONS = {"seed": "seed", "mode": "ok, raise, die or sleep",
                "marker": "file remembering that the worker died once",
                "sleep": "seconds to sleep"}
UNITS = {"nmse": "dimensionless"}


def run(config, progress=True, stop=None):
    """``mode`` 'ok': a result; 'raise': an error; 'die': SIGKILL the worker process
    on the first attempt (the file ``marker`` remembers it), a result on the next;
    'sleep': a result after ``sleep`` seconds."""
    if config["mode"] == "raise":
        raise ValueError("this cell was asked to fail")
    if config["mode"] == "die" and not os.path.exists(config["marker"]):
        with open(config["marker"], "w") as handle:
            handle.write(str(os.getpid()))
        os.kill(os.getpid(), signal.SIGKILL)
    if config["mode"] == "sleep":
        time.sleep(config["sleep"])
    seed = config["seed"]
    return {"final": {"toy": {"nmse": 0.1 * (seed + 1)}},
            "nmse": {"toy": [1.0, 0.5, 0.1 * (seed + 1)]}}


def figure(results):
    """An empty figure."""
    from matplotlib.figure import Figure

    return Figure()
