"""Population models: equation templates bound to the names a circuit uses.

A `PopulationModel` says which equations a population integrates, which of its
variables is the settled state, which variable a coupling writes into, and
which parameter sets its time constant. Circuits only talk to populations
through these names, so a different neuron model (a spiking variant, say) is a
new `PopulationModel`, not a new circuit.
"""

from dataclasses import dataclass

from brian2 import NeuronGroup

from dinv.circuits.equations import CONTROLLER_EQUATIONS, SYSTEM_EQUATIONS


@dataclass(frozen=True)
class PopulationModel:
    """A neuron model usable as one population of a circuit.

    Parameters
    ----------
    equations : str
        Brian2 equations, every line with its unit.
    state : str
        Variable read out as the population's settled activity.
    input : str
        Variable that the incoming coupling writes into.
    tau : str
        Shared parameter holding the population's time constant (second).
    method : str
        Brian2 integration method (``'euler'``, as in the paper).
    """

    equations: str
    state: str
    input: str
    tau: str
    method: str = "euler"

    def make_group(self, n, name, clock, order, codeobj_class):
        """Build the Brian2 ``NeuronGroup`` of ``n`` neurons for this model.

        Parameters
        ----------
        n : int
            Number of neurons (circuits x batch x layer width).
        name : str
            Unique Brian2 name of the group.
        clock : brian2.Clock
            Clock shared by the whole circuit.
        order : int
            Scheduling order inside the ``groups`` slot; a population is
            updated after every population with a lower order.
        codeobj_class : type
            Brian2 code-object class (code generation target).

        Returns
        -------
        brian2.NeuronGroup
        """
        return NeuronGroup(
            n,
            self.equations,
            method=self.method,
            name=name,
            clock=clock,
            order=order,
            namespace={},
            codeobj_class=codeobj_class,
        )


SYSTEM = PopulationModel(
    equations=SYSTEM_EQUATIONS, state="delta", input="I_fb", tau="tau_system"
)
"""Fast linear rate system (Eq. 5)."""

CONTROLLER = PopulationModel(
    equations=CONTROLLER_EQUATIONS, state="u", input="readout", tau="tau_controller"
)
"""Slow leaky-integral controller (Eq. 8)."""
