"""RBFCNN: voting (eq. 5), train/eval modes, harness attributes, checkpoint round trip."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from art_manifold_defenses.checkpoint import load_checkpoint, save_checkpoint
from art_manifold_defenses.models import build_model
from art_manifold_defenses.rbf_reconstruction import RBFCNN, RBFFilterBank, StaticRBFCNN


def test_eval_forward_is_log_of_mean_vote_probabilities(mnist_small, mnist_bank: RBFFilterBank) -> None:
    x = torch.from_numpy(mnist_small[2][:4])
    model = RBFCNN(build_model("wong_small"), mnist_bank, votes=3, seed=5).eval()
    out = model(x)
    # reproduce eq. 5 by hand with the same seeded noise stream
    replay = RBFCNN(build_model("wong_small"), mnist_bank, votes=3, seed=5).eval()
    replay.classifier.load_state_dict(model.classifier.state_dict())
    probs = sum(torch.softmax(replay.classifier(replay.reconstruction(x)), 1) for _ in range(3)) / 3
    torch.testing.assert_close(out, torch.log(probs + 1e-12))
    torch.testing.assert_close(out.exp().sum(1), torch.ones(4), atol=1e-4, rtol=0)
    assert model.stochastic


def test_train_mode_uses_training_reconstruction(mnist_small, mnist_bank: RBFFilterBank) -> None:
    x = torch.from_numpy(mnist_small[2][:4])
    cnn = build_model("wong_small")
    model = RBFCNN(cnn, mnist_bank, train_beta1=125.0).train()
    expected = cnn(model.reconstruction(x, beta1=125.0, beta2=0.0, clip=False))
    torch.testing.assert_close(model(x), expected)


def test_beta2_zero_model_is_deterministic(mnist_small, mnist_bank: RBFFilterBank) -> None:
    x = torch.from_numpy(mnist_small[2][:4])
    model = RBFCNN(build_model("wong_small"), mnist_bank, beta2=0.0).eval()
    assert not model.stochastic
    torch.testing.assert_close(model(x), model(x))


def test_bpda_surrogate_is_the_static_model_and_shares_weights(
    mnist_small, mnist_bank: RBFFilterBank
) -> None:
    x = torch.from_numpy(mnist_small[2][:4])
    model = RBFCNN(build_model("wong_small"), mnist_bank).eval()
    assert model.bpda_surrogate is None  # the adaptive gradient is inside forward
    surrogate = model.static_model()
    assert list(surrogate.parameters()) == []  # no copy, no extra state
    exposed = RBFCNN(build_model("wong_small"), mnist_bank, expose_static_surrogate=True).bpda_surrogate
    assert isinstance(exposed, StaticRBFCNN)
    expected = model.classifier(model.reconstruction(x, beta2=0.0))
    torch.testing.assert_close(surrogate(x), expected)
    assert set(model.state_dict()) == {f"classifier.{k}" for k in model.classifier.state_dict()} | {
        "reconstruction.bank.means",
        "reconstruction.bank.variances",
    }


def test_set_beta2_switches_noise(mnist_bank: RBFFilterBank) -> None:
    model = RBFCNN(build_model("wong_small"), mnist_bank)
    model.set_beta2(0.0)
    assert not model.stochastic and model.beta2 == 0.0
    with pytest.raises(ValueError, match="beta2"):
        model.set_beta2(-1.0)


def test_checkpoint_round_trip_restores_the_filter_bank(
    tmp_path, mnist_small, mnist_bank: RBFFilterBank
) -> None:
    import art_manifold_defenses.rbf_reconstruction as rbf

    x = torch.from_numpy(mnist_small[2][:4])
    model = RBFCNN(build_model("wong_small"), mnist_bank, beta2=0.0, votes=4).eval()
    path = save_checkpoint(
        model,
        tmp_path / "model.pt",
        architecture={"name": "wong_small"},
        defence={"name": rbf.DEFENCE_NAME, "params": model.config()},
    )
    loaded, meta = load_checkpoint(path)
    assert isinstance(loaded, RBFCNN) and meta["defence"]["name"] == "rbf-cnn"
    assert torch.equal(loaded.filter_bank.means, mnist_bank.means)
    assert torch.equal(loaded.filter_bank.variances, mnist_bank.variances)
    assert loaded.votes == 4 and loaded.beta2 == 0.0
    torch.testing.assert_close(loaded(x), model(x))


def test_builder_needs_bank_shape() -> None:
    from art_manifold_defenses.rbf_reconstruction import build_rbf_cnn

    with pytest.raises(ValueError, match="num_filters"):
        build_rbf_cnn(nn.Linear(2, 2), {"patch_size": 3})


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"votes": 0}, "votes"), ({"train_beta1": 0.0}, "train_beta1"), ({"beta1": -2.0}, "beta1")],
)
def test_parameter_errors(mnist_bank: RBFFilterBank, kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        RBFCNN(build_model("wong_small"), mnist_bank, **kwargs)
    with pytest.raises(TypeError, match="classifier"):
        RBFCNN("cnn", mnist_bank)  # type: ignore[arg-type]
