"""Circuit declarations: populations, areas, projections and feedback pathways (no torch)."""

from biofa.circuit.graph import INITS, Area, Circuit, FeedbackPathway, Projection
from biofa.circuit.populations import E, I, Population, Units

__all__ = [
    "INITS",
    "Area",
    "Circuit",
    "E",
    "FeedbackPathway",
    "I",
    "Population",
    "Projection",
    "Units",
]
