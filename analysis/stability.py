"""Linear stability of the dynamic-inversion circuits (Sec. 3.2, Eq. 13), for analysis.

The Jacobians and spectral abscissae live in `dinv.theory`, the one home of
the circuits' equations; they are re-exported here under the names analysis
code has always used.
"""

from dinv.theory import (
    chain_abscissa,
    chain_jacobian,
    circuit_jacobian,
    full_abscissa,
    jacobian_abscissa,
    loop_abscissa,
    loop_jacobian,
    reduced_abscissa,
)

__all__ = [
    "chain_abscissa",
    "chain_jacobian",
    "circuit_jacobian",
    "full_abscissa",
    "jacobian_abscissa",
    "loop_abscissa",
    "loop_jacobian",
    "reduced_abscissa",
]
