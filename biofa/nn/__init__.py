"""The torch back-end: a circuit compiled into batched ops with the rules' feedback.

:func:`compile` builds a :class:`CompiledCircuit`; :mod:`~biofa.nn.group` (batched projections),
:mod:`~biofa.nn.area` (areas and their hooks), :mod:`~biofa.nn.function` (the autograd Functions),
:mod:`~biofa.nn.constraints` (Dale's law), :mod:`~biofa.nn.norms` (norm controls),
:mod:`~biofa.nn.seed_batched` (many seeds as one computation), :mod:`~biofa.nn.seeds`.
"""

from biofa.nn.compiler import CompiledCircuit, compile

__all__ = ["CompiledCircuit", "compile"]
