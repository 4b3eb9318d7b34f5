"""FPDTrainer under torchrun (2 CPU processes, Gloo): every pass goes through DistributedDataParallel, so the
ranks' parameters stay identical after training, in phase 2 (two updates per batch) and in phase 1 alike."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

SCRIPT = """
import sys
import numpy as np
import torch
from torch import nn
from art_manifold_defenses import distributed
from art_manifold_defenses.fpd import FeaturePyramidDecoder, FPDTrainer


class Backbone(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU())
        self.stages = nn.ModuleList(
            [
                nn.Sequential(nn.Conv2d(4, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.ReLU()),
                nn.Sequential(nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16), nn.ReLU()),
            ]
        )
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10))


out, threshold = sys.argv[1], float(sys.argv[2])
distributed.init_distributed("cpu")
torch.manual_seed(0)
data = np.load(sys.argv[3])
model = FeaturePyramidDecoder(Backbone(), input_size=16, fpn_channels=16)
trainer = FPDTrainer(model, threshold=threshold, verbose=False)
trainer.fit(data["x"], data["y"], batch_size=32, nb_epochs=1)
flat = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
torch.save({"params": flat, "history": trainer.history}, f"{out}/rank{distributed.rank()}.pt")
distributed.destroy_distributed()
"""


@pytest.mark.slow
@pytest.mark.parametrize("threshold", [3.0, -1.0])  # -1: every batch in phase 1
def test_ranks_stay_identical_under_torchrun(
    mnist_small: tuple[np.ndarray, ...], tmp_path: Path, threshold: float
) -> None:
    x = torch.nn.functional.interpolate(
        torch.from_numpy(mnist_small[0][:256]), size=16, mode="bilinear"
    ).numpy()
    np.savez(tmp_path / "data.npz", x=x, y=mnist_small[1][:256])
    script = tmp_path / "train_fpd.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "AMD_TEST_THREADS": "1"}
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(var, None)
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        str(script),
        str(tmp_path),
        str(threshold),
        str(tmp_path / "data.npz"),
    ]
    done = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=240, cwd=Path(__file__).parents[2]
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    initial = torch.cat([p.detach().reshape(-1) for p in _initial_model().parameters()])
    assert not torch.equal(ranks[0]["params"], initial)  # it trained
    torch.testing.assert_close(ranks[0]["params"], ranks[1]["params"], rtol=0, atol=1e-6)
    phase_one = ranks[0]["history"][-1]["phase_one"]
    assert (
        phase_one == 1.0 if threshold < 0 else phase_one < 1.0
    )  # phase 1 only / phase 2 (two updates) happened

    def logged(rank: dict) -> list[dict]:
        return [{k: v for k, v in record.items() if k != "seconds"} for record in rank["history"]]

    assert logged(ranks[0]) == logged(ranks[1])  # the phase switch and the logged values agree across ranks


def _initial_model() -> torch.nn.Module:
    namespace: dict[str, object] = {}
    exec(SCRIPT.split("out, threshold")[0], namespace)  # the script's imports and Backbone class
    from art_manifold_defenses.fpd import FeaturePyramidDecoder

    torch.manual_seed(0)
    return FeaturePyramidDecoder(namespace["Backbone"](), input_size=16, fpn_channels=16)  # type: ignore[operator]
