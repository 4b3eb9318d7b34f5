"""One shape for every defence (issue 21): ``DEFENCES`` lists the five with one ``train`` signature, their
``Config`` dataclasses generate the ``amd train`` flags, checkpoints rebuild through the records (old names
through the one alias table), and a sixth defence needs only its own record and an entry in the list -- shown
with a toy defence that ``amd train --defense toy`` trains and ``load_checkpoint`` rebuilds."""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import subprocess
import sys
import typing
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from art_manifold_defenses import cli, demo
from art_manifold_defenses.checkpoint import load_checkpoint, save_checkpoint
from art_manifold_defenses.defence_record import (
    Defence,
    TrainingConfig,
    add_defence_arguments,
    config_dest,
    config_from_namespace,
)
from art_manifold_defenses.defence_trainers import DEFENCE_TRAINERS
from art_manifold_defenses.defences import ALIASES, DEFENCES, defence_names, get_defence, resolve_defence
from art_manifold_defenses.models import build_model

FIVE = {
    "rbf-cnn": ("art_manifold_defenses.rbf_reconstruction", "000"),
    "radial-mapping": ("art_manifold_defenses.radial_mapping", "001"),
    "fpd": ("art_manifold_defenses.fpd", "002"),
    "manifold-reg": ("art_manifold_defenses.manifold_regularization", "003"),
    "stn": ("art_manifold_defenses.smoothing", "004"),
}


def _parse(defence: Defence, argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_defence_arguments(parser.add_argument_group(defence.name), defence)
    return parser.parse_args(argv)


def _changed_value(annotation: Any, default: Any) -> tuple[Any, list[str]]:
    """A value other than ``default`` for a field of type ``annotation``, and the flag argument(s) that give
    it."""
    if annotation is bool:
        return True, []
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    literal = annotation if typing.get_origin(annotation) is typing.Literal else None
    if literal is None and len(args) == 1 and typing.get_origin(args[0]) is typing.Literal:
        literal = args[0]
    if literal is not None:
        value = next(c for c in typing.get_args(literal) if c != default)
        return value, [value]
    kind = args[0] if len(args) == 1 else annotation
    if kind is int:
        value = 3 if default != 3 else 4
    elif kind is float:
        value = 0.25 if default != 0.25 else 0.5
    else:
        value = "changed"
    return value, [str(value)]


def test_the_five_defences_are_listed_with_one_train_signature() -> None:
    assert set(DEFENCES) == set(FIVE)
    signatures = set()
    for name, defence in DEFENCES.items():
        assert defence.name == name and (defence.package, defence.paper_id) == FIVE[name] and defence.paper
        assert issubclass(defence.config, TrainingConfig) and dataclasses.is_dataclass(defence.config)
        sig = inspect.signature(defence.train)
        signatures.add(tuple((p.name, p.kind, p.default) for p in sig.parameters.values()))
        assert [p.name for p in inspect.signature(defence.build).parameters.values()] == [
            "base_model",
            "params",
        ]
    assert signatures == {
        (
            ("base_model", inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.empty),
            ("data", inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.empty),
            ("config", inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.empty),
            ("device", inspect.Parameter.KEYWORD_ONLY, "cpu"),
            ("seed", inspect.Parameter.KEYWORD_ONLY, 0),
            ("verbose", inspect.Parameter.KEYWORD_ONLY, True),
            ("checkpoint_dir", inspect.Parameter.KEYWORD_ONLY, None),
        )
    }


@pytest.mark.parametrize("name", sorted(FIVE))
def test_config_round_trips_through_its_generated_flags(name: str) -> None:
    defence = DEFENCES[name]
    assert (
        config_from_namespace(defence, _parse(defence, [])) == defence.config()
    )  # the defaults: the paper's
    hints = typing.get_type_hints(defence.config)
    argv, expected = [], {}
    parser = argparse.ArgumentParser()
    add_defence_arguments(parser, defence)
    flags = {action.dest: action.option_strings[0] for action in parser._actions if action.option_strings}
    for item in dataclasses.fields(defence.config):
        if item.metadata.get("shared"):
            assert config_dest(defence, item) not in flags  # amd train's own flag, not the defence's
            continue
        assert item.metadata.get("help"), f"{name}: {item.name} has no help"
        value, tail = _changed_value(hints[item.name], item.default)
        argv += [flags[config_dest(defence, item)], *tail]
        expected[item.name] = value
    assert config_from_namespace(defence, parser.parse_args(argv)) == defence.config(**expected)


def test_flags_keep_their_names_defaults_and_choices() -> None:
    """The generated flags are those that were written by hand (names, destinations, defaults), and the
    ``Literal`` choices are the modules' own constants."""
    from art_manifold_defenses.fpd.denoising import DENOISING_FORMS
    from art_manifold_defenses.fpd.network import MIDDLE_CHOICES
    from art_manifold_defenses.fpd.trainer import SECOND_PASS_MODES
    from art_manifold_defenses.manifold_regularization.regularizers import BATCHING_MODES, HAMMING_FORMS
    from art_manifold_defenses.manifold_regularization.schedules import PRESETS
    from art_manifold_defenses.manifold_regularization.trainer import ABLATIONS
    from art_manifold_defenses.radial_mapping.block import INITS, VARIANTS
    from art_manifold_defenses.radial_mapping.transform import MODES
    from art_manifold_defenses.smoothing.stability import STABILITY_TARGETS

    args = cli._build_parser().parse_args(["train", "--out", "x"])
    assert (args.rbf_beta1, args.rbf_votes, args.rbf_plus, args.rbf_filters) == (25.0, 10, False, None)
    assert (args.rbm_after, args.rbm_epsilon, args.fpd_fpn_channels, args.fpd_no_bn_recalibration) == (
        "all_conv",
        1e-6,
        256,
        False,
    )
    assert (args.mr_schedule, args.mr_eps, args.sigma, args.stability_weight, args.stn_target) == (
        "auto",
        None,
        0.7,
        1.0,
        "softmax",
    )
    subparsers = next(a for a in cli._build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    choices = {a.dest: set(a.choices) for a in subparsers.choices["train"]._actions if a.choices}
    assert (
        choices["rbm_variant"] == set(VARIANTS)
        and choices["rbm_init"] == set(INITS)
        and choices["rbm_mode"] == set(MODES)
    )
    assert choices["fpd_denoising_form"] == set(DENOISING_FORMS) and choices["fpd_middle"] == set(
        MIDDLE_CHOICES
    )
    assert choices["fpd_second_pass"] == set(SECOND_PASS_MODES) and choices["mr_ablation"] == set(ABLATIONS)
    assert choices["mr_schedule"] == {"auto", *PRESETS} and choices["mr_hamming_form"] == set(HAMMING_FORMS)
    assert choices["mr_batching"] == set(BATCHING_MODES) and choices["stn_target"] == set(STABILITY_TARGETS)
    assert choices["defense"] == {"none", *FIVE, "rbf-cnn-plus", "smoothing"}
    with pytest.raises(SystemExit):  # the utils argparse types still check the values
        cli._build_parser().parse_args(["train", "--out", "x", "--defense", "stn", "--sigma", "-1"])


def test_aliases_are_one_table() -> None:
    assert set(ALIASES).isdisjoint(DEFENCES) and all(target in DEFENCES for target, _ in ALIASES.values())
    defence, overrides = resolve_defence("rbf-cnn-plus")
    assert defence is DEFENCES["rbf-cnn"] and overrides == {"plus": True}
    assert get_defence("smoothing") is DEFENCES["stn"] and defence_names() == sorted({*FIVE, *ALIASES})
    assert config_from_namespace(defence, _parse(defence, []), overrides).plus is True  # type: ignore[attr-defined]
    with pytest.raises(KeyError, match="no-such"):
        resolve_defence("no-such")
    assert (
        set(DEFENCE_TRAINERS) == set(defence_names())
        and DEFENCE_TRAINERS["smoothing"] == "art_manifold_defenses.smoothing.cli"
    )


def test_a_checkpoint_of_an_earlier_name_loads_through_the_alias(tmp_path: Path) -> None:
    from art_manifold_defenses.smoothing import SmoothedClassifier

    base = build_model("wong_small").eval()
    path = save_checkpoint(
        SmoothedClassifier(base, 0.25),
        tmp_path / "model.pt",
        architecture={"name": "wong_small"},
        defence={"name": "smoothing", "params": {"sigma": 0.25}},
    )
    loaded, meta = load_checkpoint(path)
    assert (
        isinstance(loaded, SmoothedClassifier)
        and loaded.sigma == 0.25
        and meta["defence"]["name"] == "smoothing"
    )


def test_the_list_and_the_records_import_no_torch() -> None:
    code = (
        "import sys, art_manifold_defenses.defences as d; assert len(d.DEFENCES) == 5; "
        "print('torch' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_a_defence_trains_from_python_with_the_one_signature(
    mnist_small: tuple[np.ndarray, ...], tmp_path: Path
) -> None:
    x, y, xt, yt = mnist_small
    stn = DEFENCES["stn"]
    config = stn.default_config(epochs=1, batch_size=64, sigma=0.3)
    model, meta = stn.train(
        build_model("wong_small"),
        {"x_train": x[:128], "y_train": y[:128]},
        config,
        device="cpu",
        seed=0,
        verbose=False,
        checkpoint_dir=tmp_path / "state",
    )
    assert meta == {"name": "stn", "params": {"sigma": 0.3, "stability_weight": 1.0, "stn_target": "softmax"}}
    path = save_checkpoint(model, tmp_path / "model.pt", architecture={"name": "wong_small"}, defence=meta)
    loaded, _ = load_checkpoint(path)
    for a, b in zip(model.state_dict().values(), loaded.state_dict().values(), strict=True):
        assert torch.equal(a, b)


# ------------------------------------------------------------------------------------------------ a sixth
# defence
class _Scaled(nn.Module):
    def __init__(self, base: nn.Module, factor: float) -> None:
        super().__init__()
        self.base = base
        self.register_buffer("factor", torch.tensor(float(factor)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) * self.factor


@dataclasses.dataclass
class ToyConfig(TrainingConfig):
    factor: float = dataclasses.field(default=2.0, metadata={"help": "logit scale (default: 2)"})
    frozen: bool = dataclasses.field(default=False, metadata={"help": "do not train the base model"})


def _build_toy(base_model: nn.Module, params: dict[str, Any]) -> nn.Module:
    return _Scaled(base_model, params["factor"])


def _train_toy(
    base_model: nn.Module,
    data: dict[str, Any],
    config: ToyConfig,
    *,
    device: Any = "cpu",
    seed: int = 0,
    verbose: bool = True,
    checkpoint_dir: str | Path | None = None,
) -> tuple[nn.Module, dict[str, Any]]:
    from art_manifold_defenses.training import train

    if not config.frozen:
        train(
            base_model,
            data["x_train"],
            data["y_train"],
            epochs=config.epochs,
            batch_size=config.batch_size,
            optimizer=torch.optim.Adam(base_model.parameters(), lr=config.lr),
            device=device,
            seed=seed,
            verbose=verbose,
            checkpoint_dir=checkpoint_dir,
            collapse_check=False,
        )
    return _Scaled(base_model, config.factor).eval(), {"name": "toy", "params": {"factor": config.factor}}


TOY = Defence(
    name="toy",
    paper="a toy (no paper)",
    paper_id="999",
    package=__name__,
    config=ToyConfig,
    build=_build_toy,
    train=_train_toy,
    flag_prefix="toy",
)


def test_a_sixth_defence_needs_only_its_record_and_the_list(
    monkeypatch: pytest.MonkeyPatch, data_root: str, tmp_path: Path
) -> None:
    monkeypatch.setitem(DEFENCES, "toy", TOY)  # the one line a new defence adds, besides its own folder
    assert (
        inspect.signature(TOY.train).parameters.keys()
        == inspect.signature(DEFENCES["stn"].train).parameters.keys()
    )
    out = tmp_path / "toy"
    rc = cli.main(
        [
            "train",
            "--defense",
            "toy",
            "--toy-factor",
            "3",
            "--model",
            "wong_small",
            "--epochs",
            "1",
            "--train-limit",
            "64",
            "--batch-size",
            "32",
            "--data-root",
            data_root,
            "--out",
            str(out),
            "--quiet",
        ]
    )
    assert rc == 0
    sidecar = json.loads((out / "model.json").read_text())
    assert sidecar["defence"] == {"name": "toy", "params": {"factor": 3.0}}
    assert (out / "train_state").is_dir()
    loaded, _ = load_checkpoint(out / "model.pt")
    assert isinstance(loaded, _Scaled) and float(loaded.factor) == 3.0
    # amd demo reads the same list: a demo entry may name the toy and set its flags by destination
    entry = demo.DemoEntry("toy", "the toy", {"name": "wong_small"}, "toy", {"toy_frozen": True})
    namespace = demo._train_namespace(
        entry, argparse.Namespace(data_root=None, device="cpu", seed=0, quiet=True), tmp_path, epochs=1
    )
    assert namespace.toy_frozen is True and namespace.toy_factor == 2.0
    monkeypatch.delitem(DEFENCES, "toy")
    with pytest.raises(
        ValueError, match="toy"
    ):  # without its entry in the list the checkpoint names an unknown defence
        load_checkpoint(out / "model.pt")
