"""``amd --help``, ``amd <command> --help`` and argument errors answer without importing torch, ART or the
other heavy libraries (issue 22, item 6): the parser is built from light modules only and every heavy import
waits for a command's handler.

Each case runs :func:`art_manifold_defenses.cli.main` in a fresh interpreter (``sys.modules`` of this test
process already holds torch) and reports the exit status and which heavy top-level packages it imported.
"""

from __future__ import annotations

import ast
import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

#: Top-level packages that parsing arguments must not import.
HEAVY = (
    "torch",
    "torchvision",
    "art",
    "foolbox",
    "cleverhans",
    "autoattack",
    "torchattacks",
    "matplotlib",
    "scipy",
    "numpy",
    "pandas",
    "sklearn",
    "tqdm",
)

_SCRIPT = f"""
import json, sys
from art_manifold_defenses.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
heavy = sorted({{name.split(".")[0] for name in sys.modules}} & set({HEAVY!r}))
sys.stdout.write("\\n@@" + json.dumps({{"code": code, "heavy": heavy}}) + "\\n")
"""

#: Every subcommand of ``amd`` (``amd --help`` lists exactly these).
SUBCOMMANDS = (
    "train",
    "evaluate",
    "demo",
    "fit-rbf",
    "feature-analysis",
    "certify",
    "verify",
    "reproduce",
    "info",
)


def _run(*argv: str) -> tuple[int, list[str], str, str]:
    """(exit status, heavy packages imported, stdout before the report, stderr) of ``amd *argv``."""
    proc = subprocess.run(
        [sys.executable, "-c", _SCRIPT, *argv], capture_output=True, text=True, timeout=120, check=False
    )
    out, sep, report = proc.stdout.rpartition("\n@@")
    assert sep, f"no report from the child process; stderr:\n{proc.stderr}"
    result = json.loads(report)
    return result["code"], result["heavy"], out, proc.stderr


def test_top_level_help_lists_every_subcommand_without_heavy_imports() -> None:
    code, heavy, out, _ = _run("--help")
    assert code == 0
    assert heavy == []
    assert "usage: amd" in out
    for command in SUBCOMMANDS:
        assert command in out


@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_subcommand_help_without_heavy_imports(command: str) -> None:
    code, heavy, out, _ = _run(command, "--help")
    assert code == 0
    assert heavy == []
    assert out.lstrip().startswith(f"usage: amd {command}")


def test_train_help_lists_the_defences_and_their_flags_without_heavy_imports() -> None:
    code, heavy, out, _ = _run("train", "--defense", "fpd", "--help")
    assert code == 0
    assert heavy == []
    for text in (
        "--model",
        "cw_mnist",
        "rbf-cnn",
        "radial-mapping",
        "fpd",
        "manifold-reg",
        "stn",
        "--defense fpd",
        "--defense manifold-reg",
    ):
        assert text in out


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (
            ("train", "--out", "x", "--device", "gpu"),
            "argument --device: expected auto, cpu, cuda or cuda:N, got 'gpu'",
        ),
        (
            ("evaluate", "--checkpoint", "m.pt", "--out", "x", "--device", "tpu:0"),
            "argument --device: expected auto, cpu, cuda or cuda:N, got 'tpu:0'",
        ),
        (("evaluate", "--out", "x"), "the following arguments are required: --checkpoint"),
        (("train", "--out", "x", "--no-such-flag"), "unrecognized arguments: --no-such-flag"),
        (("train", "--out", "x", "--epochs", "0"), "argument --epochs: expected an integer >= 1, got '0'"),
        (("train", "--out", "x", "--model", "nope"), "argument --model: invalid choice: 'nope'"),
        (("certify", "--checkpoint", "m.pt", "--out", "x", "--device", "gpu"), "argument --device"),
        (("no-such-command",), "invalid choice: 'no-such-command'"),
    ],
)
def test_argument_errors_without_heavy_imports(argv: tuple[str, ...], expected: str) -> None:
    code, heavy, _, err = _run(*argv)
    assert code == 2
    assert heavy == []
    assert "usage: amd" in err
    assert expected in err


def test_device_cpu_and_auto_parse_without_torch() -> None:
    """A ``--device`` naming no GPU is checked without torch (only a ``cuda`` value needs it, to ask for a
    GPU)."""
    from art_manifold_defenses.utils import device_arg

    assert device_arg("cpu") == "cpu" and device_arg("auto") == "auto"
    script = (
        "import sys\nfrom art_manifold_defenses.utils import device_arg\n"
        "assert [device_arg('cpu'), device_arg('auto')] == ['cpu', 'auto']\n"
        "print('torch' in sys.modules)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    assert proc.stdout.strip() == "False"


def test_a_command_still_imports_what_it_needs() -> None:
    """The lazy imports are postponed, not lost: ``amd info`` runs and reports torch."""
    code, heavy, out, _ = _run("info")
    assert code == 0
    assert "torch" in heavy
    assert json.loads(out)["torch"] != "not installed"


#: Modules that the parser reads and packages that re-export lazily: importing them loads no heavy library.
LIGHT_MODULES = (
    "art_manifold_defenses",
    "art_manifold_defenses.utils",
    "art_manifold_defenses.models",
    "art_manifold_defenses.models.names",
    "art_manifold_defenses.verification",
    "art_manifold_defenses.verification.choices",
    "art_manifold_defenses.verification.cli",
    "art_manifold_defenses.smoothing.choices",
    "art_manifold_defenses.smoothing.cli",
    "art_manifold_defenses.radial_mapping.cli",
    "art_manifold_defenses.rbf_reconstruction.cli",
)


def test_light_modules_import_no_heavy_library() -> None:
    script = (
        f"import importlib, sys\nfor name in {LIGHT_MODULES!r}:\n    importlib.import_module(name)\n"
        f"print(sorted({{n.split('.')[0] for n in sys.modules}} & set({HEAVY!r})))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    assert proc.stdout.strip() == "[]"


@pytest.mark.parametrize(
    "package", ["art_manifold_defenses", "art_manifold_defenses.models", "art_manifold_defenses.verification"]
)
def test_lazy_package_exports_every_name_of_its_all(package: str) -> None:
    """Each name of ``__all__`` resolves (to the object its submodule defines), is in ``dir()`` and
    star-imports."""
    module = importlib.import_module(package)
    namespace: dict[str, object] = {}
    exec(f"from {package} import *", namespace)
    for name in module.__all__:
        assert name in dir(module)
        assert namespace[name] is getattr(module, name)
    with pytest.raises(AttributeError, match="no attribute 'no_such_name'"):
        module.no_such_name  # noqa: B018


def test_no_lazy_package_exports_a_name_of_its_own_submodule() -> None:
    """A package re-exporting lazily must not export a name that is also one of its submodules: importing the
    submodule (which Python then sets as the package's attribute) would hide the exported function, as
    ``radial_mapping.feature_analysis`` did before its module became ``radial_mapping.features``."""
    root = Path(__file__).resolve().parents[1] / "art_manifold_defenses"
    checked = []
    for init in sorted(root.rglob("__init__.py")):
        tree = ast.parse(init.read_text(encoding="utf-8"))
        lazy = any(
            isinstance(node, ast.FunctionDef)
            and node.name == "__getattr__"
            or isinstance(node, ast.Assign)
            and any(
                isinstance(t, ast.Tuple)
                and any(isinstance(e, ast.Name) and e.id == "__getattr__" for e in t.elts)
                for t in node.targets
            )
            for node in tree.body
        )
        if not lazy:
            continue
        exported = next(
            ast.literal_eval(node.value)
            for node in tree.body
            if isinstance(node, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets)
        )
        submodules = {p.stem for p in init.parent.glob("*.py")} | {
            p.parent.name for p in init.parent.glob("*/__init__.py")
        }
        assert set(exported) & submodules == set(), init
        checked.append(init.parent.name)
    assert {"art_manifold_defenses", "models", "verification", "radial_mapping"} <= set(checked)


def test_zoo_names_match_the_registry() -> None:
    """``--model`` offers :data:`~art_manifold_defenses.models.names.ZOO_NAMES`, kept equal to the registry's
    names."""
    from art_manifold_defenses.models import model_names
    from art_manifold_defenses.models.names import ZOO_NAMES

    assert ZOO_NAMES == tuple(model_names())
