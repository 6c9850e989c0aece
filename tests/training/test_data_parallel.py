"""`embedkit train` under torchrun: 2 CPU processes (gloo) share the data and the gathered negatives."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_torchrun_on_cpu_trains_one_model_on_sharded_data(recipe_file, tmp_path):
    recipe = recipe_file(max_steps=3, batch_size=4, save_steps=3,
                         loss={"name": "infonce", "temperature": 0.05, "gather_across_devices": True},
                         eval={"sets": [{"kind": "sts", "path": "stsb", "split": "dev"}], "before": False})
    out = tmp_path / "out"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "embedkit.cli.main", "train", str(recipe), "--out", str(out)]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("saved to") == 1  # the second process neither evaluates nor saves

    state = json.loads((out / "checkpoint-3" / "trainer_state.json").read_text())
    # 3 steps x 2 processes x 4 sentences of 96: a quarter of an epoch. Two processes each training
    # alone on all the data (what transformers does with torchrun on a CPU unless told) would log 1/8.
    assert abs(state["epoch"] - 0.25) < 1e-6
    results = json.loads((out / "results.json").read_text())
    assert results["steps"] == 3 and "stsb-dev" in results["after"]
