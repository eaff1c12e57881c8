"""Convert a plain ``torch.nn.Module`` into a circuit: :func:`from_module`, :func:`copy_weights`.

The module is traced with ``torch.fx`` (``symbolic_trace``) and its graph read as areas and
projections: every ``Conv2d``/``Linear`` becomes a weighted projection (with ``rule`` on its
feedback pathway), a ``BatchNorm`` right after one becomes that projection's batch norm (or the
area's, when it normalises a sum or follows a biased layer), a ReLU closes an area, a residual
``+`` sums projections into one area (the skip becomes ``identity()``), pooling becomes a
:func:`~biofa.kinds.pool.pool` projection, and ``flatten`` before a ``Linear`` a flattening dense
projection. The first operation outside that vocabulary is refused with one line naming it and its
node. What is supported: ``Conv2d`` (one group, no dilation, zero padding, square kernel),
``Linear``, ``BatchNorm1d/2d`` (affine, running statistics, default ``eps``/``momentum``), ``ReLU``
(module, ``F.relu``, ``torch.relu``, ``.relu()``), ``MaxPool2d``/``AvgPool2d`` (no dilation, no
``ceil_mode``), ``AdaptiveAvgPool2d(1)``/``AdaptiveMaxPool2d(1)``, ``+``, ``flatten(x, 1)``,
``Identity`` and ``Dropout(p=0)``; the output must be a ``Linear`` layer's (the readout).

The circuit's areas are ``Units`` (no Dale's law) named after the fx nodes. :func:`copy_weights`
copies the module's weights, biases and batch-norm parameters and statistics into a compiled
circuit of it, so the converted network starts where the module is (under backprop it computes
the same outputs and gradients); feedback tensors stay as the rules drew them at compile time.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.fx import Node, symbolic_trace
from torch.fx.passes.shape_prop import ShapeProp

from biofa.circuit import Circuit, Units
from biofa.kinds import conv, dense, identity, pool

__all__ = ["copy_weights", "from_module"]

_RELU = (F.relu, torch.relu)
_ADD = (operator.add, operator.iadd, torch.add)
_FLATTEN = (torch.flatten,)


@dataclass
class Term:
    """One projection into a pending sum: its source area, kind and the module parts it copies."""

    source: str
    kind: Any
    weight: str = ""  # module parameter name
    bn: str = ""  # the projection's own batch norm (module name)


@dataclass
class Pending:
    """A pre-activation sum not yet closed into an area."""

    terms: list[Term]
    biases: list[str] = field(default_factory=list)
    norm: str = ""  # area-level batch norm (module name)


@dataclass
class Flat:
    """An area's output flattened (the next ``Linear`` reads it with ``dense(flatten=True)``)."""

    area: str


class _Converter:
    def __init__(self, module: nn.Module, example: torch.Tensor, name: str, init: str):
        self.module = module
        self.graph = symbolic_trace(module)
        was = module.training
        module.eval()  # shape propagation must not move batch-norm statistics
        try:
            with torch.no_grad():
                ShapeProp(self.graph).propagate(example)
        finally:
            module.train(was)
        self.circuit = Circuit(name, init=init)
        self.circuit.input("input")
        self.modules = dict(self.graph.named_modules())
        self.values: dict[Node, Any] = {}
        #: projection -> (weight parameter, projection batch norm); area -> (biases, batch norm)
        self.projections: dict[str, tuple[str, str]] = {}
        self.areas: dict[str, tuple[list[str], str]] = {}

    # -- values ------------------------------------------------------------------------------
    def area_of(self, node: Node, value: Any, nonlinearity: str = "identity") -> str:
        """The area holding ``value``, the value of ``node``'s first argument: a pending sum is
        closed into a new area (named after that argument; after ``node`` for a ReLU)."""
        if isinstance(value, str) and nonlinearity == "identity":
            return value
        if isinstance(value, Flat):
            raise self.refuse(node, "a flattened tensor can only feed a Linear layer")
        if isinstance(value, str):  # a ReLU of an area's output: a new area
            value = Pending([Term(value, identity())])
        operand = node.args[0]
        name = node.name if nonlinearity != "identity" else operand.name
        return self.close(operand, value, nonlinearity, name)

    def close(self, node: Node, pending: Pending, nonlinearity: str, name: str = "") -> str:
        shape = tuple(node.meta["tensor_meta"].shape[1:])
        name = name or node.name
        self.circuit.area(name, Units(shape[0]), nonlinearity=nonlinearity,
                          batch_norm=bool(pending.norm), bias=bool(pending.biases))  # fmt: skip
        for term in pending.terms:
            self.circuit.connect(term.source, name, term.kind)
            if term.weight:
                self.projections[f"{term.source}->{name}"] = (term.weight, term.bn)
        self.areas[name] = (pending.biases, pending.norm)
        return name

    def refuse(self, node: Node, why: str) -> ValueError:
        target = (
            node.target
            if isinstance(node.target, str)
            else getattr(node.target, "__name__", repr(node.target))
        )
        kind = type(self.modules[node.target]).__name__ if node.op == "call_module" else target
        return ValueError(
            f"from_module: unsupported operation {kind!r} at node {node.name!r} "
            f"({node.op} {target}): {why}"
        )

    # -- the walk ----------------------------------------------------------------------------
    def run(self) -> Circuit:
        for node in self.graph.graph.nodes:
            if node.op == "placeholder":
                if self.values:
                    raise self.refuse(node, "a circuit has one input")
                self.values[node] = "input"
            elif node.op == "output":
                self.readout(node)
            else:
                value = self.step(node)
                if isinstance(value, Pending) and len(node.users) > 1:
                    value = self.close(node, value, "identity")  # used twice: compute it once
                self.values[node] = value
        return self.circuit

    def arg(self, node: Node, i: int = 0) -> Any:
        a = node.args[i]
        if not isinstance(a, Node):
            raise self.refuse(node, f"argument {i} is not a tensor of the graph")
        return self.values[a]

    def step(self, node: Node) -> Any:
        if node.op == "call_module":
            return self.call_module(node, self.modules[node.target])
        if (
            node.op == "call_function"
            and node.target in _RELU
            or (node.op == "call_method" and node.target in ("relu", "relu_"))
        ):
            return self.area_of(node, self.arg(node), "relu")
        if node.op == "call_function" and node.target in _ADD:
            return self.add(node)
        flatten = (node.op == "call_function" and node.target in _FLATTEN) or (
            node.op == "call_method" and node.target == "flatten"
        )
        if flatten:
            start = node.args[1] if len(node.args) > 1 else node.kwargs.get("start_dim", 0)
            if start != 1 or len(node.args) > 2:
                raise self.refuse(node, "only flatten(x, 1) is supported")
            return Flat(self.area_of(node, self.arg(node)))
        raise self.refuse(node, "no circuit equivalent")

    def call_module(self, node: Node, m: nn.Module) -> Any:
        x = self.arg(node)
        if isinstance(m, nn.Conv2d):
            k, s, p = m.kernel_size, m.stride, m.padding
            if (
                m.groups != 1
                or m.dilation != (1, 1)
                or m.padding_mode != "zeros"
                or isinstance(p, str)
                or len({*k}) != 1
                or len({*s}) != 1
                or len({*p}) != 1
            ):
                raise self.refuse(node, "needs groups=1, no dilation, zero padding, square kernel")
            kind = conv(k[0], stride=s[0], padding=p[0])
            return Pending([Term(self.area_of(node, x), kind, f"{node.target}.weight")],
                           [f"{node.target}.bias"] if m.bias is not None else [])  # fmt: skip
        if isinstance(m, nn.Linear):
            flat = isinstance(x, Flat)
            source = x.area if flat else self.area_of(node, x)
            return Pending([Term(source, dense(flatten=flat), f"{node.target}.weight")],
                           [f"{node.target}.bias"] if m.bias is not None else [])  # fmt: skip
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            return self.batch_norm(node, m, x)
        if isinstance(m, nn.ReLU):
            return self.area_of(node, x, "relu")
        if isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)):
            return self.pooling(node, m, x)
        if isinstance(m, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
            if m.output_size not in (1, (1, 1)):
                raise self.refuse(node, "only output_size 1 (global pooling) is supported")
            mode = "avg" if isinstance(m, nn.AdaptiveAvgPool2d) else "max"
            return Pending([Term(self.area_of(node, x), pool(mode, 0))])
        if isinstance(m, nn.Identity) or (isinstance(m, nn.Dropout) and m.p == 0):
            return x
        raise self.refuse(node, "no circuit equivalent")

    def batch_norm(self, node: Node, m: nn.Module, x: Any) -> Pending:
        if not (m.affine and m.track_running_stats) or m.eps != 1e-5 or m.momentum != 0.1:
            raise self.refuse(node, "needs affine=True, running statistics, eps 1e-5, momentum 0.1")
        if isinstance(x, str):
            return Pending([Term(x, identity())], [], str(node.target))
        if not isinstance(x, Pending) or x.norm:
            raise self.refuse(node, "batch norm of a normalised or flattened tensor")
        single = len(x.terms) == 1 and not x.biases and not x.terms[0].bn
        if single and isinstance(m, nn.BatchNorm2d) and x.terms[0].kind.op == "conv2d":
            kind = x.terms[0].kind
            term = Term(x.terms[0].source, conv(kind.kernel, kind.stride, kind.padding,
                        batch_norm=True), x.terms[0].weight, str(node.target))  # fmt: skip
            return Pending([term])
        return Pending(x.terms, x.biases, str(node.target))

    def pooling(self, node: Node, m: nn.Module, x: Any) -> Pending:
        k, s, p = (v if isinstance(v, int) else v[0] for v in (m.kernel_size, m.stride, m.padding))
        square = all(isinstance(v, int) or len({*v}) == 1 for v in (m.kernel_size, m.stride,
                                                                   m.padding))  # fmt: skip
        ok = square and not m.ceil_mode
        if isinstance(m, nn.MaxPool2d):
            ok = ok and m.dilation in (1, (1, 1))
        else:
            ok = ok and m.count_include_pad and m.divisor_override is None
        if not ok:
            raise self.refuse(node, "needs a square window, no dilation, no ceil_mode")
        mode = "max" if isinstance(m, nn.MaxPool2d) else "avg"
        return Pending([Term(self.area_of(node, x), pool(mode, k, s, p))])

    def add(self, node: Node) -> Pending:
        terms, biases = [], []
        for i in range(2):
            v, operand = self.arg(node, i), node.args[i]
            if isinstance(v, Pending) and v.norm:
                v = self.close(operand, v, "identity")
            if isinstance(v, str):
                v = Pending([Term(v, identity())])
            if not isinstance(v, Pending):
                raise self.refuse(node, "adds a flattened tensor")
            if {t.source for t in v.terms} & {t.source for t in terms}:  # x + f(x): one area
                v = Pending([Term(self.close(operand, v, "identity", f"{operand.name}_skip"),
                                  identity())])  # between two areas, one projection  # fmt: skip
            terms += v.terms
            biases += v.biases
        return Pending(terms, biases)

    def readout(self, node: Node) -> None:
        (out,) = node.args
        value = self.values.get(out) if isinstance(out, Node) else None
        linear = isinstance(value, Pending) and len(value.terms) == 1 and value.terms[0].weight
        if not (linear and value.terms[0].kind.op == "linear" and not value.norm and value.biases):
            raise self.refuse(
                out if isinstance(out, Node) else node,
                "the output must be a Linear layer with a bias (the readout)",
            )
        classes = int(out.meta["tensor_meta"].shape[1])
        term = value.terms[0]
        self.circuit.readout("out", classes)
        self.circuit.connect(term.source, "out", term.kind)
        self.projections[f"{term.source}->out"] = (term.weight, "")
        self.areas["out"] = (value.biases, "")


def _convert(module: nn.Module, example_input: torch.Tensor, name: str, init: str) -> _Converter:
    converter = _Converter(module, example_input, name, init)
    converter.run()
    return converter


def from_module(
    module: nn.Module,
    example_input: torch.Tensor,
    rule: str = "backprop",
    *,
    name: str = "",
    init: str = "he_normal",
    **rule_options: Any,
) -> Circuit:
    """The circuit of ``module`` (module docstring) with ``rule`` on every feedback pathway.

    ``example_input`` is a batch like the data (its shape decides the areas' shapes; the module
    runs it once in eval mode, without gradients). ``name`` defaults to the module's class name.
    Raises ``ValueError`` naming the first unsupported operation and its node.
    """
    circuit = _convert(module, example_input, name or type(module).__name__, init).circuit
    if rule != "backprop":
        circuit.feedback_everywhere(rule, **rule_options)
    return circuit


@torch.no_grad()
def copy_weights(compiled: nn.Module, module: nn.Module) -> None:
    """Copy ``module``'s parameters and batch-norm statistics into ``compiled``, a compiled
    circuit of :func:`from_module` ``(module, ...)``."""
    example = torch.zeros(2, *compiled.input_shape)
    converter = _convert(module, example.to(next(module.parameters()).dtype),
                         compiled.circuit.name, compiled.circuit.init)  # fmt: skip
    params = dict(module.named_parameters())
    for group in compiled.groups.values():
        for s in group.slices:
            weight, bn = converter.projections[s.projection]
            group.weight[:, s.start : s.stop].copy_(params[weight])
            if bn:
                group.norm.load_state_dict(converter.modules[bn].state_dict())
    for area, (biases, bn) in converter.areas.items():
        target = compiled.areas[area]
        if biases:
            target.bias.copy_(sum(params[b] for b in biases))
        if bn:
            target.norm.load_state_dict(converter.modules[bn].state_dict())
