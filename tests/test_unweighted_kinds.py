"""Unweighted projection kinds (identity, the option-A shortcut, pooling) against the peers'
formulas and autograd, and the ResNet circuits built with them."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from biofa import Circuit, Units, compile, conv, dense, identity, pool, shortcut
from biofa.architectures import cifar_resnet
from biofa.circuit.kind import ProjectionKind
from biofa.kinds.identity import same


def biotorch_identity_padding(x: torch.Tensor, planes: int) -> torch.Tensor:
    """BioTorch's / the PFA code's ``IdentityPadding`` (small_resnet.py), written out."""
    return F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, planes // 4, planes // 4), "constant", 0)


@pytest.mark.parametrize("c_in,h", [(16, 32), (8, 16), (6, 7)])
def test_shortcut_is_biotorchs_identity_padding(c_in, h):
    kind = shortcut(2)
    out = kind.output_shape("a->b", (c_in, h, h), 2 * c_in)
    assert out == (2 * c_in, -(-h // 2), -(-h // 2))
    transform = kind.build_transform((c_in, h, h), out)
    x = torch.randn(3, c_in, h, h, dtype=torch.float64, requires_grad=True)
    y = transform(x)
    ref = biotorch_identity_padding(x, 2 * c_in)
    assert torch.equal(y, ref)
    g = torch.randn_like(y)
    (gx,) = torch.autograd.grad(y, x, g)
    expected = torch.zeros_like(x)  # the error at the kept positions and channels, nothing else
    expected[:, :, ::2, ::2] = g[:, c_in // 2 : c_in // 2 + c_in]
    assert torch.equal(gx, expected)


def test_shortcut_refuses_fewer_channels_and_vector_sources():
    with pytest.raises(ValueError, match="only pads"):
        shortcut(2).output_shape("a->b", (16, 8, 8), 8)
    with pytest.raises(ValueError, match="spatial"):
        shortcut(2).check_source("a->b", "a", False)
    with pytest.raises(ValueError, match="positive int"):
        shortcut(0)


def test_identity_transform_is_the_tensor_itself():
    x = torch.randn(2, 3)
    assert identity().build_transform((3,), (3,)) is same
    assert same(x) is x


@pytest.mark.parametrize(
    "kind,ref",
    [
        (pool("max", 3, stride=2, padding=1), lambda x: F.max_pool2d(x, 3, 2, 1)),
        (pool("avg", 2), lambda x: F.avg_pool2d(x, 2)),
        (pool("avg", 0), lambda x: torch.nn.AdaptiveAvgPool2d(1)(x)),
        (pool("max", 0), lambda x: torch.nn.AdaptiveMaxPool2d(1)(x)),
    ],
)
def test_pool_kind_equals_torch_pooling(kind, ref):
    x = torch.randn(2, 4, 9, 9, dtype=torch.float64)
    shape = kind.output_shape("a->b", (4, 9, 9), 4)
    y = kind.build_transform((4, 9, 9), shape)(x)
    assert tuple(y.shape[1:]) == shape
    torch.testing.assert_close(y, ref(x), rtol=0, atol=0)


def _block(short) -> Circuit:
    c = Circuit("block")
    c.input("image")
    c.area("a", Units(8), batch_norm=True)
    c.area("b", Units(16), bias=False)
    c.readout("out")
    c.connect("image", "a", conv(3))
    c.connect("a", "b", conv(3, stride=2, batch_norm=True))
    c.connect("image", "b", short)
    c.connect("b", "out", dense(flatten=True))
    return c


def test_a_compiled_option_a_block_equals_the_hand_written_block_in_fp64():
    model = compile(_block(shortcut(2)), input_shape=(8, 8, 8), num_classes=3, seed=1).double()
    x = torch.randn(4, 8, 8, 8, dtype=torch.float64)
    w1 = model.groups["image__to__a"].weight.detach()
    w2 = model.groups["a__to__b"].weight.detach()
    w3 = model.groups["b__to__out"].weight.detach()
    b3 = model.areas["out"].bias.detach()
    a = F.relu(F.batch_norm(F.conv2d(x, w1, padding=1), None, None, training=True))
    z = F.batch_norm(F.conv2d(a, w2, stride=2, padding=1), None, None, training=True)
    b = F.relu(z + biotorch_identity_padding(x, 16))
    ref = b.flatten(1) @ w3.t() + b3
    torch.testing.assert_close(model(x), ref)


def test_a_kind_that_is_neither_weighted_nor_unweighted_is_refused_at_compile():
    class Odd(ProjectionKind):
        op = "odd"
        batch_norm = False

        def signature(self):
            return ("odd",)

        def check_source(self, projection, source, spatial):
            return None

        def spatial_output(self, source_spatial):
            return source_spatial

        def output_shape(self, projection, source_shape, channels):
            return (channels, source_shape[1] // 2, source_shape[2] // 2)

    with pytest.raises(TypeError, match="neither a WeightedKind nor an UnweightedKind"):
        compile(_block(Odd()), input_shape=(16, 8, 8), num_classes=3)


@pytest.mark.parametrize("depth,blocks", [(20, 3), (32, 5), (44, 7), (56, 9), (110, 18)])
def test_cifar_resnets_have_he_et_al_s_layer_count_and_parameters(depth, blocks):
    c = cifar_resnet(depth)
    convs = [p for p in c.weighted_projections() if p.op == "conv2d"]
    assert len(convs) == 1 + 6 * blocks  # option A: the shortcuts have no weights
    assert len(convs) + 1 == depth  # + the dense readout
    ops = [p.op for p in c.projections]
    assert ops.count("shortcut") == 2 and ops.count("identity") == 3 * blocks - 2
    if depth in (20, 56):
        model = compile(c, input_shape=(3, 32, 32), num_classes=10)
        n = sum(p.numel() for p in model.forward_parameters())
        # He et al. (2016), Table 6: 0.27 M and 0.85 M parameters
        assert round(n / 1e6, 2) == {20: 0.27, 56: 0.85}[depth]


def test_option_b_resnet_adds_two_projection_shortcuts_with_their_own_pathways():
    c = cifar_resnet(20, shortcut_option="B", rule="feedback_alignment")
    model = compile(c, input_shape=(3, 32, 32), num_classes=10)
    shortcuts = [g for g in model.groups.values() if g.op.kind == "conv2d" and
                 g.weight.shape[-1] == 1]  # fmt: skip
    assert len(shortcuts) == 2 and all("B" in g.feedback for g in shortcuts)


def test_ei_resnet_signs_every_weighted_projection():
    model = compile(cifar_resnet(20, ei=True, width=0.5), input_shape=(3, 32, 32), num_classes=10)
    for group in model.groups.values():
        if group.sources == ["image"]:
            continue
        w = group.weight.detach()
        signs = torch.tensor(group_signs(model, group)).view(1, -1, *([1] * (w.dim() - 2)))
        assert bool(((w * signs) >= 0).all()), group.name


def group_signs(model, group):
    (source,) = group.sources
    return model.circuit.areas[source].signs
