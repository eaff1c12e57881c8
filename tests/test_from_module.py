"""``from_module``: a plain ``nn.Module`` traced into a circuit; torchvision's ResNet-18 under
backprop equals the original module's outputs and gradients (fp64)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import biofa
from biofa import compile, copy_weights, from_module

torchvision = pytest.importorskip("torchvision")


def converted(module: nn.Module, x: torch.Tensor, rule: str = "backprop", **options):
    circuit = from_module(module, x, rule, **options)
    model = compile(
        circuit, input_shape=tuple(x.shape[1:]), num_classes=circuit.readout_area.channels
    )
    model = model.to(x.dtype)
    copy_weights(model, module)
    return circuit, model


def _pairs(model, module):
    """(compiled tensor, module tensor) for every parameter copy_weights mapped."""
    from biofa.nn.tracing import _convert

    conv = _convert(module, torch.zeros(2, *model.input_shape, dtype=torch.float64),
                    model.circuit.name, model.circuit.init)  # fmt: skip
    params = dict(module.named_parameters())
    for group in model.groups.values():
        for s in group.slices:
            weight, bn = conv.projections[s.projection]
            yield (group.weight, (slice(None), slice(s.start, s.stop))), params[weight]
            if bn:
                for p in ("weight", "bias"):
                    yield (getattr(group.norm, p), ()), params[f"{bn}.{p}"]
    for area, (biases, bn) in conv.areas.items():
        if bn:
            for p in ("weight", "bias"):
                yield (getattr(model.areas[area].norm, p), ()), params[f"{bn}.{p}"]
        if len(biases) == 1:
            yield (model.areas[area].bias, ()), params[biases[0]]


def test_torchvision_resnet18_under_backprop_equals_the_module_fp64():
    torch.manual_seed(0)
    module = torchvision.models.resnet18(weights=None).double()
    x = torch.randn(2, 3, 64, 64, dtype=torch.float64)
    circuit, model = converted(module, x)
    assert len(circuit.weighted_projections()) == 21  # 20 convs (3 downsample) + fc
    assert [p.op for p in circuit.projections].count("pool") == 2  # max pool stem, avg pool
    module.train(), model.train()
    y = torch.randint(0, 1000, (2,))
    ref, out = module(x), model(x)
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-10)
    F.cross_entropy(ref, y).backward()
    F.cross_entropy(out, y).backward()
    pairs = list(_pairs(model, module))
    assert len(pairs) == sum(1 for _ in module.parameters())  # every parameter is mapped
    for (tensor, index), reference in pairs:
        got = tensor.grad[index] if index else tensor.grad
        torch.testing.assert_close(got, reference.grad, rtol=1e-9, atol=1e-12)
    # batch-norm statistics moved identically in both
    model.eval(), module.eval()
    torch.testing.assert_close(model(x), module(x), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("rule", ["feedback_alignment", "usf"])
def test_a_converted_resnet18_trains_a_step_with_another_rule(rule):
    module = torchvision.models.resnet18(weights=None, num_classes=10)
    x = torch.randn(4, 3, 32, 32)
    circuit, model = converted(module, x, rule)
    assert circuit.everywhere == (rule, {})
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    loss = F.cross_entropy(model(x), torch.tensor([0, 1, 2, 3]))
    loss.backward()
    opt.step()
    fa = next(iter(model.groups.values()))
    assert fa.rule.name == rule


class Small(nn.Module):
    """Conv with a bias, an area-level batch norm after it, a residual sum, flatten, linear."""

    def __init__(self, act=F.relu):
        super().__init__()
        self.c1 = nn.Conv2d(3, 4, 3, padding=1, bias=True)
        self.bn = nn.BatchNorm2d(4)
        self.c2 = nn.Conv2d(4, 4, 3, padding=1, bias=False)
        self.pool = nn.AvgPool2d(2)
        self.fc = nn.Linear(4 * 4 * 4, 5)
        self.act = act

    def forward(self, x):
        h = self.act(self.bn(self.c1(x)))
        h = torch.relu(self.c2(h) + h)
        return self.fc(torch.flatten(self.pool(h), 1))


def test_a_small_net_with_biases_flatten_and_a_residual_sum_matches():
    module = Small().double()
    x = torch.randn(3, 3, 8, 8, dtype=torch.float64)
    _, model = converted(module, x)
    torch.testing.assert_close(model(x), module(x), rtol=1e-10, atol=1e-10)


def test_the_first_unsupported_operation_is_named_with_its_node():
    module = Small(act=torch.sigmoid)
    with pytest.raises(ValueError, match=r"^from_module: unsupported operation 'sigmoid' at node "
                       r"'sigmoid' \(call_function sigmoid\)") as info:  # fmt: skip
        from_module(module, torch.randn(2, 3, 8, 8))
    assert "\n" not in str(info.value)

    class Gelu(Small):
        def __init__(self):
            super().__init__()
            self.act = nn.GELU()

    with pytest.raises(ValueError, match="unsupported operation 'GELU' at node 'act'"):
        from_module(Gelu(), torch.randn(2, 3, 8, 8))


def test_from_module_is_public():
    assert biofa.from_module is from_module and "from_module" in biofa.__all__
