"""Run by test_distributed.py under ``torchrun --nproc_per_node 2``: trains the toy model with DDP over gloo
and records, per process, the items it loaded, its weights before every step and the files it saved."""
import json
import sys
from pathlib import Path

import torch

import posekit.engine.trainer as trainer_module
from engine_toys import ToyDataset, ToyDekr, toy_cfg
from posekit.engine.distributed import init_distributed, shutdown_distributed
from posekit.engine.rng import seed_everything
from posekit.models.dekr.loss import DekrLoss


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


class RecordingDekr(ToyDekr):
    def __init__(self) -> None:
        super().__init__()
        self.weights_before_steps = []

    def forward(self, x):
        self.weights_before_steps.append(torch.cat([p.detach().flatten() for p in self.parameters()]).tolist())
        return super().forward(x)


def main(output_dir: str) -> None:
    cfg = toy_cfg(TRAIN__END_EPOCH=2)
    context = init_distributed(cfg)
    saved = []
    save_torch = trainer_module.save_torch

    def recording_save(path, obj):
        saved.append(Path(path).name)
        save_torch(path, obj)

    trainer_module.save_torch = recording_save
    seed_everything(cfg.SEED + context.rank)  # different initial weights: DDP must broadcast rank 0's
    model, dataset = RecordingDekr(), RecordingDataset()
    trainer_module.Trainer(cfg, model, dataset, DekrLoss(cfg), context, Path(output_dir)).train()
    final = torch.cat([p.detach().flatten() for p in model.parameters()]).tolist()
    record = {"world_size": context.world_size, "loaded": dataset.loaded, "saved": saved,
              "weights_before_steps": model.weights_before_steps, "final_weights": final}
    (Path(output_dir) / f"rank{context.rank}.json").write_text(json.dumps(record))
    shutdown_distributed()


if __name__ == "__main__":
    main(sys.argv[1])
