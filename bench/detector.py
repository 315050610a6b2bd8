"""Two-stage person detector speed: R-50-FPN inference per image at 800x1333 and one training iteration.

    PYTHONPATH=lib python bench/detector.py [--devices cpu cuda] [--repeats N] [--write]

Inference: one sample COCO image (640x425) resized as at test time (short side 800 -> 800x1205, padded to
800x1216), batch 1, randomly initialised weights (FrozenBN), the RPN keeping its test-time 1000 proposals
per level; modes "fp32" (the model as built) and "inference form" (norms folded into the convolutions,
channels_last: what DetectorEstimator runs); on CUDA also fp16 autocast. Training: two images at the
training sizes, forward, backward and SGD step (detectron2's batch-2 iteration).
The CPU floor is the forward's conv and linear multiply-adds (counted by hooks during the timed forward)
divided by the best throughput of a 3x3 conv at ResNet's res2..res5 shapes, timed on this machine. detectron2
publishes 0.051-0.066 s/img inference and 0.307-0.359 s/iter training for R-50-FPN DensePose on a V100.
--write replaces the "## Detector, CPU" / "## Detector, GPU" section of bench/RESULTS.md.
"""
from pathlib import Path
from typing import Dict, List

import numpy as np
import torch
from torch import nn

from common import device_parser, fastest_conv_probe, format_table, machine, median_seconds, write_section
from posekit.config import load_cfg
from posekit.data.detection_mapper import DetectionMapper
from posekit.data.catalog import get_dataset_records
from posekit.engine import build_optimizer
from posekit.apis.detector.training import detector_solver
from posekit.models import build_model, prepare_for_inference

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "experiments" / "coco" / "detector" / "faster_rcnn_R_50_FPN_person_1x.yaml"
SAMPLES = "coco_2017_val_samples"  # the first is 000000000785.jpg, 640x425
# A small rate: repeated steps on one batch from random weights must not diverge while being timed.
TRAINING_LR = "0.0001"
# ResNet-50's res2..res5 feature maps of an 800x1216 input: the floor uses the fastest of these.
THROUGHPUT_SHAPES = [(64, 200, 304), (128, 100, 152), (256, 50, 76), (512, 25, 38)]
COUNTED = (nn.Conv2d, nn.Linear)


def inputs(cfg, is_train: bool, count: int) -> List[Dict]:
    """Mapped sample images with their people (test: resized for inference; train: drawn sizes and flips)."""
    mapper = DetectionMapper.from_config(cfg, is_train=is_train)
    records = get_dataset_records(SAMPLES)[:count]
    return [mapper(record, np.random.SeedSequence(index) if is_train else None) for index, record in enumerate(records)]


def counted_macs(model: nn.Module, batch: List[Dict]) -> int:
    """Conv + linear multiply-adds of one forward of ``batch`` (hooks on the real run)."""
    total = 0

    def hook(module, _inputs, output):
        nonlocal total
        if isinstance(module, nn.Linear):
            total += module.weight.numel() * (output.numel() // output.shape[-1])
        else:
            total += module.weight.numel() * output.shape[0] * output.shape[-2] * output.shape[-1]

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, COUNTED)]
    try:
        with torch.no_grad():
            model(batch)
    finally:
        for handle in handles:
            handle.remove()
    return total


def inference_rows(cfg, device: torch.device, repeats: int) -> List[List[str]]:
    """One row per mode: median seconds per image, images/s, and the CPU floor."""
    torch.manual_seed(0)
    base = build_model(cfg).to(device).eval()
    batch = inputs(cfg, is_train=False, count=1)
    models = {"fp32": (base, None)}
    if device.type == "cuda":
        models["fp16 autocast"] = (base, torch.float16)
    models["inference form"] = (prepare_for_inference(_copy(cfg, base), device), None)
    floor_rate = fastest_conv_probe(device, 1, repeats, THROUGHPUT_SHAPES).throughput(repeats) \
        if device.type == "cpu" else None
    rows = []
    for mode, (model, dtype) in models.items():
        def run():
            with torch.no_grad(), torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                model(batch)
        seconds = median_seconds(run, device, repeats)
        floor = counted_macs(model, batch) / floor_rate if floor_rate else None
        rows.append([mode, "1", f"{seconds:.3f}", f"{1 / seconds:.2f}",
                     f"{floor:.3f}" if floor else "-", f"{seconds / floor:.2f}x" if floor else "-"])
    return rows


def _copy(cfg, model: nn.Module) -> nn.Module:
    """A second detector with ``model``'s weights."""
    twin = build_model(cfg)
    twin.load_state_dict(model.state_dict())
    return twin


def training_seconds(cfg, device: torch.device, repeats: int) -> float:
    """Median seconds of one batch-2 iteration: forward, backward, SGD step."""
    torch.manual_seed(0)
    model = build_model(cfg, is_train=True).to(device).train()
    optimizer = build_optimizer(model, detector_solver(cfg))
    batch = inputs(cfg, is_train=True, count=2)

    def step():
        losses = model(batch)
        optimizer.zero_grad(set_to_none=True)
        sum(losses.values()).backward()
        optimizer.step()
    return median_seconds(step, device, repeats)


def training_row(cfg, device: torch.device, repeats: int) -> List[str]:
    """The table row of one batch-2 training iteration."""
    seconds = training_seconds(cfg, device, repeats)
    return ["training iteration", "2", f"{seconds:.3f}", f"{2 / seconds:.2f}", "-", "-"]


def main() -> None:
    args = device_parser(__doc__.splitlines()[0]).parse_args()
    for name in args.devices:
        device = torch.device(name)
        cfg = load_cfg(str(CONFIG), ["MODEL.WEIGHTS", "", "MODEL.DEVICE", name, "SOLVER.BASE_LR", TRAINING_LR])
        rows = inference_rows(cfg, device, args.repeats) + [training_row(cfg, device, args.repeats)]
        header = ["R-50-FPN", "batch", "s / batch", "images/s", "CPU floor s", "time / floor"]
        text = (f"Machine: {machine(device if device.type == 'cuda' else None)}.\n"
                f"Medians of {args.repeats} runs after one warm-up; random weights; input "
                f"data/samples/coco 000000000785.jpg at test size 800x1205 (training: drawn sizes).\n\n"
                + format_table(header, rows))
        print(text)
        if args.write:
            write_section(f"Detector, {'GPU' if device.type == 'cuda' else 'CPU'}", text)


if __name__ == "__main__":
    main()
