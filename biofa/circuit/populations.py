"""Populations: named groups of neurons whose outgoing synapses share a sign (Dale's law).

An area's activity is the channel concatenation of its populations, in declaration order. The
sign of a weight belongs to its *presynaptic* population: every outgoing weight of an excitatory
population is >= 0, of an inhibitory one <= 0; ``Units`` are unconstrained (for circuits that
reproduce papers without Dale's law).

A population has a name, unique in its area (default: its kind, ``E``, ``I`` or ``Units``), and is
addressed as ``"area.name"`` in projections, feedback pathways and outputs (``"v1.pyr"``). It may
have its own nonlinearity and bias (``None``: the area's): Cornford et al.'s feedforward
interneurons are linear, ``I(50, "i", nonlinearity="identity", bias=False)``.
"""

from __future__ import annotations

from dataclasses import dataclass

# "sign" (signum) is not differentiable: only rules that never use its derivative (EKDAA) train
# through it; see biofa.nn.area.ACTIVATIONS.
NONLINEARITIES = ("relu", "tanh", "sigmoid", "sign", "identity")


@dataclass(frozen=True)
class Population:
    """``size`` neurons (channels of a conv area, units of a dense one) with outgoing sign ``sign``.

    ``sign`` is +1 (excitatory), -1 (inhibitory) or 0 (unconstrained); ``name`` defaults to
    ``kind``; ``nonlinearity`` and ``bias`` (``None``: the area's) are the population's own.
    """

    size: int
    sign: int
    kind: str
    name: str = ""
    nonlinearity: str | None = None
    bias: bool | None = None

    def __post_init__(self) -> None:
        if isinstance(self.size, bool) or not isinstance(self.size, int) or self.size <= 0:
            raise ValueError(f"{self.kind}({self.size!r}): a population needs a positive int size")
        if not self.name:
            object.__setattr__(self, "name", self.kind)
        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise ValueError(
                f"{self.kind}({self.size}, {self.name!r}): a population name must be a Python "
                "identifier (it is addressed as 'area.name')"
            )
        if self.nonlinearity is not None and self.nonlinearity not in NONLINEARITIES:
            raise ValueError(
                f"{self!r}: nonlinearity={self.nonlinearity!r} is not None or one of "
                f"{', '.join(NONLINEARITIES)}"
            )
        if self.bias is not None and not isinstance(self.bias, bool):
            raise ValueError(f"{self!r}: bias={self.bias!r} must be None, True or False")

    @property
    def named(self) -> bool:
        """Whether the population has a name of its own (not its kind's default)."""
        return self.name != self.kind

    def __repr__(self) -> str:
        extra = "".join(
            f", {k}={v!r}" for k, v in (("nonlinearity", self.nonlinearity), ("bias", self.bias))
            if v is not None
        )  # fmt: skip
        name = f", {self.name!r}" if self.named else ""
        return f"{self.kind}({self.size}{name}{extra})"


def E(
    n: int, name: str = "", *, nonlinearity: str | None = None, bias: bool | None = None
) -> Population:
    """An excitatory population of ``n`` neurons: all its outgoing weights are >= 0."""
    return Population(n, +1, "E", name, nonlinearity, bias)


def I(  # noqa: E743 - the neuroscience name
    n: int, name: str = "", *, nonlinearity: str | None = None, bias: bool | None = None
) -> Population:
    """An inhibitory population of ``n`` neurons: all its outgoing weights are <= 0."""
    return Population(n, -1, "I", name, nonlinearity, bias)


def Units(
    n: int, name: str = "", *, nonlinearity: str | None = None, bias: bool | None = None
) -> Population:
    """``n`` unconstrained units: outgoing weights of either sign (no Dale's law)."""
    return Population(n, 0, "Units", name, nonlinearity, bias)
