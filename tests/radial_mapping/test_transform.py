"""add_radial_mapping on nn.Sequential models and on the zoo's cleverhans_cnn, cw_mnist, resnet18 and unet."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from art_manifold_defenses.models import build_model
from art_manifold_defenses.radial_mapping import (
    RadialBasisMapping,
    RadialMappingConcat,
    add_radial_mapping,
    mapping_blocks,
    mapping_points,
)


def _count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _block_params(k: int) -> int:
    return 3 * k * k + 2 * k  # A/Psi k*k + centres k*k + beta k + W k*k + b k


@pytest.mark.parametrize("variant", ["paper", "authors_code"])
def test_cleverhans_cnn_parameter_count_by_hand(variant: str) -> None:
    mapped = add_radial_mapping(build_model("cleverhans_cnn"), variant=variant)
    conv1 = 16 * 1 * 8 * 8 + 16  # 1 -> 16, 8x8
    block1 = 3 * 16 * 16 + 2 * 16  # K = P = 16
    conv2 = 32 * (16 + 16) * 6 * 6 + 32  # reads conv1 features + 16 mapped channels
    block2 = 3 * 32 * 32 + 2 * 32
    conv3 = 32 * (32 + 32) * 5 * 5 + 32
    block3 = 3 * 32 * 32 + 2 * 32
    linear = 10 * (32 + 32) * 1 * 1 + 10  # the 1x1x64 features after the third block
    assert conv1 + block1 + conv2 + block2 + conv3 + block3 + linear == 96890
    assert _count(mapped) == 96890


def test_cleverhans_cnn_forward_backward() -> None:
    mapped = add_radial_mapping(build_model("cleverhans_cnn"))
    x = torch.rand(4, 1, 28, 28, requires_grad=True)
    out = mapped(x)
    assert out.shape == (4, 10)
    nn.functional.cross_entropy(out, torch.tensor([0, 1, 2, 3])).backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    blocks = mapping_blocks(mapped)
    assert len(blocks) == 3
    for block in blocks:
        assert block.centers.grad is not None and block.centers.grad.abs().sum() > 0
        assert block.A.grad is not None and torch.isfinite(block.A.grad).all()


def test_blocks_read_post_activation_features() -> None:
    mapped = add_radial_mapping(build_model("cleverhans_cnn"))
    kinds = [type(m).__name__ for m in mapped]
    assert kinds[:3] == ["Conv2d", "ReLU", "RadialMappingConcat"]


@pytest.mark.parametrize("name", ["cleverhans_cnn", "cw_mnist"])
def test_rewiring_keeps_the_original_network(name: str) -> None:
    """With the blocks' outputs forced to zero, the mapped model computes exactly the original model."""
    torch.manual_seed(0)
    base = build_model(name).eval()
    mapped = add_radial_mapping(base).eval()
    for block in mapping_blocks(mapped):
        with torch.no_grad():
            block.weight.zero_()
            block.bias.zero_()
    x = torch.rand(3, 1, 28, 28)
    torch.testing.assert_close(mapped(x), base(x), rtol=1e-5, atol=1e-5)
    if (
        name == "cleverhans_cnn"
    ):  # with live blocks it differs (cw_mnist's 32/64-dim blocks start near phi = 0)
        assert (add_radial_mapping(base).eval()(x) - base(x)).abs().max() > 1e-4


def test_cw_mnist_layout_and_base_untouched() -> None:
    base = build_model("cw_mnist")
    before = _count(base)
    mapped = add_radial_mapping(base)
    assert _count(base) == before  # a copy was mapped
    assert len(mapping_blocks(mapped)) == 4
    assert mapped(torch.rand(2, 1, 28, 28)).shape == (2, 10)
    linear = [m for m in mapped if isinstance(m, nn.Linear)][0]
    assert linear.in_features == 2 * 64 * 7 * 7


def test_batchnorm_between_conv_and_consumer_is_widened() -> None:
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3),
        nn.ReLU(),
        nn.BatchNorm2d(4),
        nn.MaxPool2d(2),
        nn.Conv2d(4, 6, 3),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(6, 3),
    )
    mapped = add_radial_mapping(model, n_centers=5, out_channels=2)
    bns = [m for m in mapped if isinstance(m, nn.BatchNorm2d)]
    assert bns[0].num_features == 6
    convs = [m for m in mapped if isinstance(m, nn.Conv2d)]
    assert convs[1].in_channels == 6
    assert [m for m in mapped if isinstance(m, nn.Linear)][0].in_features == 8
    assert mapped(torch.rand(2, 1, 12, 12)).shape == (2, 3)


def test_named_layers_and_errors() -> None:
    base = build_model("cleverhans_cnn")
    mapped = add_radial_mapping(base, after=["2"])
    assert len(mapping_blocks(mapped)) == 1 and mapping_blocks(mapped)[0].in_channels == 32
    with pytest.raises(ValueError, match="top-level Conv2d"):
        add_radial_mapping(base, after=["1"])
    with pytest.raises(ValueError, match="all_conv"):
        add_radial_mapping(base, after="everything")
    with pytest.raises(ValueError, match="empty"):
        add_radial_mapping(base, after=[])
    with pytest.raises(ValueError, match="variant"):
        add_radial_mapping(base, variant="nope")
    with pytest.raises(ValueError, match="mode"):
        add_radial_mapping(base, mode="sideways")
    with pytest.raises(ValueError, match="init_data"):
        add_radial_mapping(base, init="kmeans")
    with pytest.raises(ValueError, match="n_centers"):
        add_radial_mapping(base, n_centers=0)
    with pytest.raises(TypeError, match="nn.Module"):
        add_radial_mapping("model")  # type: ignore[arg-type]
    no_consumer = nn.Sequential(nn.Conv2d(1, 3, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    with pytest.raises(ValueError, match="reads"):
        add_radial_mapping(no_consumer)
    with pytest.raises(ValueError, match="cannot concatenate"):
        add_radial_mapping(no_consumer, after=["0"])
    with pytest.raises(ValueError, match="concat"):
        add_radial_mapping(build_model("unet"), mode="concat")


def test_inplace_modifies_the_given_sequential() -> None:
    base = build_model("cleverhans_cnn")
    out = add_radial_mapping(base, inplace=True)
    assert out is base and isinstance(base[2], RadialMappingConcat)


@pytest.mark.parametrize("after", ["all_conv", "blocks"])
def test_resnet18_projection_starts_as_the_original(after: str) -> None:
    torch.manual_seed(0)
    base = build_model("resnet18", in_channels=3, input_size=32).eval()
    mapped = add_radial_mapping(base, after=after).eval()
    x = torch.rand(2, 3, 32, 32)
    torch.testing.assert_close(mapped(x), base(x), rtol=1e-4, atol=1e-5)
    expected = 20 if after == "all_conv" else 5  # 17 convs in blocks/stem + 3 shortcut projections
    assert len(mapping_blocks(mapped)) == expected
    out = mapped.train()(x)
    out.sum().backward()
    block = mapping_blocks(mapped)[0]
    assert block.centers.grad is not None and torch.isfinite(block.centers.grad).all()


def test_unet_blocks() -> None:
    base = build_model("unet", in_channels=3, num_classes=2, input_size=32).eval()
    assert mapping_points(base) == ["down.0", "down.1", "bottleneck", "up_conv.0", "up_conv.1"]
    mapped = add_radial_mapping(base, after="blocks").eval()
    x = torch.rand(2, 3, 32, 32)
    assert mapped(x).shape == (2, 2, 32, 32)
    torch.testing.assert_close(mapped(x), base(x), rtol=1e-4, atol=1e-5)
    channels = [b.in_channels for b in mapping_blocks(mapped)]
    assert channels == [16, 32, 64, 32, 16]
    with pytest.raises(ValueError, match="not a submodule"):
        add_radial_mapping(base, after=["decoder"])
    with pytest.raises(ValueError, match="submodule"):
        add_radial_mapping(base, after=["down", "down.0"])


def test_kmeans_initialisation_uses_the_features() -> None:
    base = build_model("cleverhans_cnn")
    x = torch.rand(16, 1, 28, 28)
    uniform = add_radial_mapping(base, seed=1)
    kmeans = add_radial_mapping(base, init="kmeans", init_data=x, seed=1)
    for a, b in zip(mapping_blocks(uniform), mapping_blocks(kmeans), strict=True):
        assert not torch.allclose(a.centers, b.centers)
    # the first block's centres are k-means centres of the post-ReLU conv1 features: non-negative, inside
    # their range
    with torch.no_grad():
        features = base[1](base[0](x))
    first = mapping_blocks(kmeans)[0].centers
    assert first.min() >= 0 and first.max() <= features.max() + 1e-6


def test_seed_makes_mapping_reproducible() -> None:
    base = build_model("cleverhans_cnn")
    a, b = add_radial_mapping(base, seed=3), add_radial_mapping(base, seed=3)
    for (na, pa), (nb, pb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert na == nb and torch.equal(pa, pb)
    assert isinstance(mapping_blocks(a)[0], RadialBasisMapping)
