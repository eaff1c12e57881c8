"""The op side of a projection kind: the tensor products a projection and its rule need.

An op computes ``y = op(x, W) + b`` and the two products of its backward pass,

.. math::
    \\delta_{in} = \\mathrm{input\\_grad}(\\delta_{out}, B), \\qquad
    \\nabla W = \\mathrm{weight\\_grad}(x, \\delta_{out}),

where ``B`` is whatever the feedback rule sends the error back through (``W`` itself for
backprop). Both products are linear in their tensor arguments and neither reads the weight's
values, which is why one autograd Function (:mod:`biofa.nn.function`) serves every rule on every
op. :meth:`ProjectionOp.grads` computes the three gradients at once (a kind overrides it when its
library call fuses them, as convolutions do).

Seed-batched form: :meth:`ProjectionOp.seed_batched` returns an op over a leading seed dimension
(``x (K, N, ...)``, ``W (K, ...)``), used when many seeds train as one computation. The default,
:class:`VmappedOp`, maps the op's own functions over the seeds with ``torch.func.vmap``; kinds with
a natural batched kernel (a batched matrix product, a grouped convolution) override it.
"""

from __future__ import annotations

import abc

import torch
from torch import Tensor
from torch.func import vmap

__all__ = ["FusedOp", "ProjectionOp", "VmappedOp", "shape_only"]


def shape_only(shape, like: Tensor) -> Tensor:
    """A tensor of ``shape`` whose values are never read (expand of a scalar: no memory)."""
    return like.new_zeros(()).expand(tuple(shape))


class ProjectionOp(abc.ABC):
    """Forward and backward products of one projection kind (abstract)."""

    #: the op's name, as the kind declares it (the ``op`` coordinate of the outputs)
    kind: str

    def prepare(self, inputs: list[Tensor]) -> Tensor:
        """The op's input from the batched sources' activities (concatenated along channels)."""
        return inputs[0] if len(inputs) == 1 else torch.cat(inputs, dim=1)

    @abc.abstractmethod
    def forward(self, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        """``op(x, W) + b``."""

    @abc.abstractmethod
    def input_grad(self, grad_out: Tensor, feedback: Tensor, input_shape) -> Tensor:
        """The error at the input for ``grad_out`` at the output, sent back through ``feedback``."""

    @abc.abstractmethod
    def weight_grad(self, x: Tensor, grad_out: Tensor, weight_shape) -> Tensor:
        """``dL/dW`` for input ``x`` and output error ``grad_out`` (never reads ``W``)."""

    def bias_grad(self, grad_out: Tensor) -> Tensor:
        """``dL/db``: the output error summed over every dimension but the channel one."""
        return grad_out.sum([0, *range(2, grad_out.dim())])

    def grads(self, grad_out: Tensor, x: Tensor, feedback: Tensor, mask) -> tuple:
        """``(input, weight, bias)`` gradients, ``None`` where ``mask`` says not needed."""
        gx = self.input_grad(grad_out, feedback, x.shape) if mask[0] else None
        gw = self.weight_grad(x, grad_out, feedback.shape) if mask[1] else None
        gb = self.bias_grad(grad_out) if mask[2] else None
        return gx, gw, gb

    def seed_batched(self) -> ProjectionOp:
        """This op over a leading seed dimension (default: :class:`VmappedOp`)."""
        return VmappedOp(self)


class FusedOp(ProjectionOp):
    """An op whose library call computes the three gradients at once (:meth:`grads`, abstract);
    the two products alone come from it, with a shape-only tensor in the unused slot."""

    @abc.abstractmethod
    def grads(self, grad_out: Tensor, x: Tensor, feedback: Tensor, mask) -> tuple:
        """``(input, weight, bias)`` gradients, ``None`` where ``mask`` says not needed."""

    def input_grad(self, grad_out: Tensor, feedback: Tensor, input_shape) -> Tensor:
        x = shape_only(input_shape, grad_out)
        return self.grads(grad_out, x, feedback, (True, False, False))[0]

    def weight_grad(self, x: Tensor, grad_out: Tensor, weight_shape) -> Tensor:
        w = shape_only(weight_shape, grad_out)
        return self.grads(grad_out, x, w, (False, True, False))[1]


class VmappedOp(ProjectionOp):
    """``K`` copies of an op over a leading seed dimension, by ``torch.func.vmap`` of its functions.

    ``x (K, N, ...)``, ``W (K, ...)``, ``b (K, out)``; every product is the inner op's, per seed.
    """

    def __init__(self, inner: ProjectionOp):
        self.inner, self.kind = inner, inner.kind

    def forward(self, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        if bias is None:
            return vmap(lambda a, w: self.inner.forward(a, w, None))(x, weight)
        return vmap(self.inner.forward)(x, weight, bias)

    def input_grad(self, grad_out: Tensor, feedback: Tensor, input_shape) -> Tensor:
        shape = tuple(input_shape[1:])
        return vmap(lambda g, b: self.inner.input_grad(g, b, shape))(grad_out, feedback)

    def weight_grad(self, x: Tensor, grad_out: Tensor, weight_shape) -> Tensor:
        shape = tuple(weight_shape[1:])
        return vmap(lambda a, g: self.inner.weight_grad(a, g, shape))(x, grad_out)

    def bias_grad(self, grad_out: Tensor) -> Tensor:
        return vmap(self.inner.bias_grad)(grad_out)

    def seed_batched(self) -> ProjectionOp:
        raise TypeError("an op over seeds has no further seed-batched form")
