"""Run by test_distributed.py under ``torchrun --nproc_per_node 2``: trains the toy model with DDP over gloo
and records, per process, the items it loaded, its weights before every step and the files it saved."""
import json
import sys
from pathlib import Path

import torch

import posekit.engine.hooks as hooks_module
from engine_toys import ToyDataset, ToyModel, epoch_solver
from posekit.config import get_cfg
from posekit.engine import Checkpointer, LearningRateSchedule, Schedule, Trainer
from posekit.engine.distributed import init_distributed, shutdown_distributed
from posekit.engine.rng import seed_everything


class RecordingDataset(ToyDataset):
    def __init__(self) -> None:
        super().__init__()
        self.epoch = 0
        self.loaded = {}

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __getitem__(self, index: int):
        self.loaded.setdefault(self.epoch, []).append(index)
        return super().__getitem__(index)


class RecordingModel(ToyModel):
    def __init__(self) -> None:
        super().__init__()
        self.weights_before_steps = []

    def forward(self, batch):
        self.weights_before_steps.append(torch.cat([p.detach().flatten() for p in self.parameters()]).tolist())
        return super().forward(batch)


def main(output_dir: str) -> None:
    cfg = get_cfg()
    cfg.DEVICE = "cpu"
    context = init_distributed(cfg)
    saved = []
    save_torch = hooks_module.save_torch

    def recording_save(path, obj):
        saved.append(Path(path).name)
        save_torch(path, obj)

    hooks_module.save_torch = recording_save
    seed_everything(cfg.SEED + context.rank)  # different initial weights: DDP must broadcast rank 0's
    model, dataset = RecordingModel(), RecordingDataset()
    solver = epoch_solver(schedule=Schedule(unit="epoch", length=2, steps=(1,), gamma=0.1))
    Trainer(model, dataset, solver, context, Path(output_dir), [LearningRateSchedule(), Checkpointer()]).train()
    final = torch.cat([p.detach().flatten() for p in model.parameters()]).tolist()
    record = {"world_size": context.world_size, "loaded": dataset.loaded, "saved": saved,
              "weights_before_steps": model.weights_before_steps, "final_weights": final}
    (Path(output_dir) / f"rank{context.rank}.json").write_text(json.dumps(record))
    shutdown_distributed()


if __name__ == "__main__":
    main(sys.argv[1])
