"""The reproduction circuits on a GPU (skipped without CUDA; ``python -m pytest -m gpu``): the
option-A ResNet under every BioTorch rule in bf16 + channels_last, brSF's redraw-every-forward
draws equal on the CPU and the GPU, and a converted torchvision ResNet-18 training a step."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from biofa import compile
from biofa.architectures import cifar_resnet
from biofa.train import Train, build_optimizers

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]
OPTIONS = {
    "usf": {"norm": "biotorch"},
    "brsf": {"norm": "biotorch", "magnitude": "uniform", "redraw": "forward"},
    "frsf": {"norm": "biotorch", "magnitude": "uniform"},
}


@pytest.mark.parametrize(
    "rule", ["backprop", "feedback_alignment", "direct_feedback_alignment", "usf", "brsf", "frsf",
             "kolen_pollack", "weight_mirror", "product_fa"],
)  # fmt: skip
def test_option_a_resnet20_trains_in_bf16_channels_last(rule):
    c = cifar_resnet(20, rule=rule, rule_options=OPTIONS.get(rule), init="xavier_uniform")
    model = compile(c, input_shape=(3, 32, 32), num_classes=10).cuda()
    model = model.to(memory_format=torch.channels_last)
    opts = build_optimizers(model, Train(lr=0.05))
    x = torch.randn(64, 3, 32, 32, device="cuda").contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (64,), device="cuda")
    losses = []
    for step in range(5):
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = F.cross_entropy(model(x).float(), y)
        for o in opts:
            o.zero_grad()
        loss.backward()
        for o in opts:
            o.step()
        model.after_step(step + 1, 0)
        losses.append(float(loss))
    assert all(torch.isfinite(torch.tensor(losses))) and losses[-1] < losses[0]


def test_brsf_forward_redraws_are_the_same_on_cpu_and_gpu():
    c = cifar_resnet(20, rule="brsf", rule_options=OPTIONS["brsf"], init="xavier_uniform")
    cpu = compile(c, input_shape=(3, 32, 32), num_classes=10)
    gpu = compile(c, input_shape=(3, 32, 32), num_classes=10).cuda()
    for model in (cpu, gpu):
        model.after_step(1, 0)
    for name, group in cpu.groups.items():
        a, b = group.effective_feedback(), gpu.groups[name].effective_feedback().cpu()
        torch.testing.assert_close(a, b, rtol=1e-6, atol=0)


def test_converted_torchvision_resnet18_trains_a_step_on_the_gpu():
    torchvision = pytest.importorskip("torchvision")
    from biofa.nn.tracing import copy_weights, from_module

    module = torchvision.models.resnet18(weights=None, num_classes=10)
    x = torch.randn(32, 3, 64, 64)
    circuit = from_module(module, x, "feedback_alignment")
    model = compile(circuit, input_shape=(3, 64, 64), num_classes=10)
    copy_weights(model, module)
    model = model.cuda().to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        loss = F.cross_entropy(model(x.cuda()).float(), torch.randint(0, 10, (32,), device="cuda"))
    loss.backward()
    opt.step()
    assert torch.isfinite(loss)
