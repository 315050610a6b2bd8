"""DDP under torchrun with 2 CPU processes (gloo): sharding, synchronised weights, a single writer."""
import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from engine_toys import ToyDataset
from posekit.engine.training_state import CHECKPOINT_FILE

HERE = Path(__file__).resolve().parent
LIB = HERE.parents[1] / "lib"
EPOCHS, ITEMS, STEPS_PER_EPOCH = 2, len(ToyDataset()), 3  # 5 items per process in batches of 2, 2, 1


def run_probe(output_dir: Path) -> list:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE), str(LIB), os.environ.get("PYTHONPATH", "")]),
               OMP_NUM_THREADS="1")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               str(HERE / "ddp_probe.py"), str(output_dir)]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return [json.loads((output_dir / f"rank{rank}.json").read_text()) for rank in range(2)]


def test_two_process_training(tmp_path):
    ranks = run_probe(tmp_path)
    assert [record["world_size"] for record in ranks] == [2, 2]
    for epoch in map(str, range(EPOCHS)):
        shards = [record["loaded"][epoch] for record in ranks]
        assert sorted(shards[0] + shards[1]) == list(range(ITEMS)), f"epoch {epoch}: {shards}"
    steps = [record["weights_before_steps"] for record in ranks]
    assert len(steps[0]) == len(steps[1]) == EPOCHS * STEPS_PER_EPOCH
    # The processes were seeded differently: equal weights at every step mean DDP broadcast and averaged.
    assert steps[0] == steps[1]
    assert steps[0][0] != steps[0][-1]
    assert ranks[0]["final_weights"] == ranks[1]["final_weights"]
    assert sorted(ranks[0]["saved"]) == sorted(["checkpoint.pth.tar", "model_best.pth.tar"] * EPOCHS
                                               + ["final_state.pth.tar"])
    assert ranks[1]["saved"] == []
    stored = torch.load(tmp_path / CHECKPOINT_FILE, weights_only=True)["state_dict"]
    stored_weights = torch.cat([value.flatten() for key, value in stored.items()
                                if "running" not in key and "num_batches" not in key]).tolist()
    assert stored_weights == ranks[0]["final_weights"]
