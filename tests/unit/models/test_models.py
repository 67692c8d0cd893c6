"""Models by name: every model accepts any input size, returns [N, num_classes], exposes min_size."""

from __future__ import annotations

import math

import pytest
import torch

from mixsize_ray.errors import ConfigError
from mixsize_ray.models import MODELS, build_model
from mixsize_ray.models.cifar_resnet import CifarResNet


def test_model_names():
    assert MODELS == (
        "resnet8",
        "resnet20",
        "resnet44",
        "resnet56",
        "wrn28_10",
        "resnet18",
        "resnet50",
        "efficientnet_b0",
    )


@pytest.mark.parametrize("name", MODELS)
def test_forward_at_several_sizes(name):
    torch.manual_seed(0)
    model = build_model(name, num_classes=7).eval()
    assert isinstance(model.min_size, int) and model.min_size >= 1
    with torch.no_grad():
        for size in sorted({16, 32, 48, model.min_size}):
            out = model(torch.randn(2, 3, size, size))
            assert out.shape == (2, 7) and torch.isfinite(out).all()


@pytest.mark.parametrize(
    "name, min_size", [("resnet20", 8), ("wrn28_10", 8), ("resnet18", 32), ("efficientnet_b0", 32)]
)
def test_min_size_values(name, min_size):
    assert build_model(name, 10).min_size == min_size


@pytest.mark.parametrize("depth, n_params", [(20, 0.27e6), (56, 0.85e6)])
def test_cifar_resnet_depth_and_size_match_he_et_al(depth, n_params):
    model = build_model(f"resnet{depth}", 10)
    convs3 = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3)]
    assert len(convs3) == depth - 1  # plus the final fc layer = depth weighted layers
    widths = sorted({m.out_channels for m in convs3})
    assert widths == [16, 32, 64]
    params = sum(p.numel() for p in model.parameters())
    assert abs(params - n_params) / n_params < 0.05  # option-B shortcuts add ~1%


def test_wrn28_10_is_wide_and_has_no_dropout():
    model = build_model("wrn28_10", 10)
    params = sum(p.numel() for p in model.parameters())
    assert 36.0e6 < params < 36.7e6  # WRN-28-10 has 36.5M parameters
    assert not any(isinstance(m, torch.nn.Dropout) for m in model.modules())


def test_cifar_resnet_kaiming_init_and_trains():
    torch.manual_seed(0)
    model = build_model("resnet20", 10)
    conv = model.layers[-1].conv2  # 64 -> 64, 3x3, fan_out = 576
    assert conv.weight.std().item() == pytest.approx(math.sqrt(2 / 576), rel=0.1)
    assert isinstance(model, CifarResNet)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(8, 3, 24, 24), torch.randint(0, 10, (8,))
    losses = []
    for _ in range(5):
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


def test_num_classes_sets_the_head():
    assert build_model("resnet18", 100)(torch.zeros(2, 3, 32, 32)).shape == (2, 100)  # train mode


@pytest.mark.parametrize(
    "name, num_classes, field", [("vgg16", 10, "model.name"), ("resnet20", 1, "model.num_classes")]
)
def test_invalid_inputs(name, num_classes, field):
    with pytest.raises(ConfigError) as err:
        build_model(name, num_classes)
    assert str(err.value).startswith(f"{field}: expected")
    if field == "model.name":
        assert all(n in str(err.value) for n in MODELS) and "'vgg16'" in str(err.value)


def test_resnet8_is_the_6n_plus_2_net_with_one_block_per_stage():
    m = build_model("resnet8", 10)
    convs = [x for x in m.modules() if isinstance(x, torch.nn.Conv2d)]
    assert isinstance(m, CifarResNet) and m.depth == 8
    assert sum(x.kernel_size == (3, 3) for x in convs) == 7  # stem + 3 stages x 1 block x 2 convs
