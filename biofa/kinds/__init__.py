"""Projection kinds: one file each, holding the declaration and the op that computes it.

==============  ===================================  =========================================
kind            declared with                        op
==============  ===================================  =========================================
``linear``      :func:`~biofa.kinds.dense.dense`     matrix product (seed-batched: ``bmm``)
``conv2d``      :func:`~biofa.kinds.conv2d.conv`     convolution (seed-batched: ``groups=K``)
``local2d``     :func:`~biofa.kinds.local2d.local2d` unshared 2-D windows (unfold / einsum)
``identity``    :func:`~biofa.kinds.identity.identity`  none: the source's activity is added
``shortcut``    :func:`~biofa.kinds.shortcut.shortcut`  none: subsampled, channels zero-padded
``pool``        :func:`~biofa.kinds.pool.pool`       none: max/average pooled
==============  ===================================  =========================================

A new kind is one more file: a :class:`~biofa.circuit.kind.WeightedKind` dataclass (declaration:
source checks, shapes, fan-in, batching signature) and a :class:`ProjectionOp` (forward, input and
weight gradients), or an :class:`~biofa.circuit.kind.UnweightedKind` dataclass and the torch
transform it builds; nothing else to edit (``docs/adding-an-op-kind.md``).
"""

from biofa.kinds._base import ProjectionOp, VmappedOp
from biofa.kinds.conv2d import Conv, Conv2dOp, conv
from biofa.kinds.dense import Dense, DenseOp, dense
from biofa.kinds.identity import Identity, identity
from biofa.kinds.local2d import Local2d, Local2dOp, local2d
from biofa.kinds.pool import Pool, pool
from biofa.kinds.shortcut import Shortcut, shortcut

__all__ = [
    "Conv",
    "Conv2dOp",
    "Dense",
    "DenseOp",
    "Identity",
    "Local2d",
    "Local2dOp",
    "Pool",
    "ProjectionOp",
    "Shortcut",
    "VmappedOp",
    "conv",
    "dense",
    "identity",
    "local2d",
    "pool",
    "shortcut",
]
