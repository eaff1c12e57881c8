"""biofa: biologically constrained learning in neural circuits.

Declare E/I circuits with explicit feedback pathways, compile them to batched PyTorch ops, train
them with any registered feedback rule and compare how their feedback aligns, in xarray.

The public API is listed here once; everything else is reached through its subpackage
(``biofa.circuit`` declarations, ``biofa.rules``, ``biofa.nn`` the compiled network,
``biofa.measure`` metrics and outputs, ``biofa.data``, ``biofa.train``, ``biofa.cli``,
``biofa.spiking``).
"""

from biofa import _startup  # noqa: F401  (first: a Ctrl-C while torch imports is one line)
from biofa._version import __version__
from biofa.circuit import Circuit, E, I, Units
from biofa.cli.sweep import grid
from biofa.kinds import conv, dense, identity, local2d, pool, shortcut
from biofa.measure import accessor as _accessor  # noqa: F401  (registers the ds.biofa accessor)
from biofa.measure.evaluate import evaluate
from biofa.measure.runs import open_runs
from biofa.nn.compiler import CompiledCircuit, compile
from biofa.nn.saved import load_model
from biofa.nn.tracing import copy_weights, from_module
from biofa.train.config import Train

__all__ = [
    "Circuit",
    "CompiledCircuit",
    "E",
    "I",
    "Train",
    "Units",
    "__version__",
    "compile",
    "conv",
    "copy_weights",
    "dense",
    "evaluate",
    "from_module",
    "grid",
    "identity",
    "load_model",
    "local2d",
    "open_runs",
    "pool",
    "shortcut",
]
