"""DensePose R-CNN speed and memory: R-50-FPN inference per image at 800x1333, split into the detector and the
DensePose branch, and one training iteration.

    PYTHONPATH=lib python bench/densepose.py [--devices cpu cuda] [--repeats N] [--write]

The model is detectron2's densepose_rcnn_R_50_FPN_s1x (decoder, V1ConvX head, chart predictor) with random
weights, run in its inference form (norms folded, channels_last: what DensePoseEstimator runs) on the sample
image of bench/detector.py. "detector" times the same network with the DensePose branch switched off
(MODEL.DENSEPOSE_ON False, same weights); "DensePose branch" is the difference (its Panoptic-FPN decoder runs on
the whole image, the head and predictor per detection; the detections column says how many there were). Peak memory is the process's maximum resident set (CPU) or the
allocator's peak (CUDA) over the timed runs. --write replaces the "## DensePose R-CNN, CPU" / "GPU" section of
bench/RESULTS.md.
"""
import resource
from pathlib import Path
from typing import List

import torch

from common import device_parser, format_table, machine, median_seconds, write_section
from detector import TRAINING_LR, inputs, training_seconds
from posekit.config import load_cfg
from posekit.models import build_model, prepare_for_inference

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "experiments" / "densepose_coco" / "densepose_rcnn_R_50_FPN_s1x.yaml"


def peak_memory_mb(device: torch.device) -> float:
    """Peak memory so far: the CUDA allocator's, or the process's maximum resident set."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2 ** 20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def inference_rows(cfg, device: torch.device, repeats: int) -> List[List[str]]:
    """Detector alone, then detector + DensePose branch, and the branch's share."""
    torch.manual_seed(0)
    full = build_model(cfg)
    detector_cfg = cfg.clone()
    detector_cfg.defrost()
    detector_cfg.MODEL.DENSEPOSE_ON = False
    detector = build_model(detector_cfg)
    detector.load_state_dict({k: v for k, v in full.state_dict().items() if k in detector.state_dict()})
    batch = inputs(cfg, is_train=False, count=1)
    rows, seconds = [], []
    for name, model in (("detector", detector), ("detector + DensePose branch", full)):
        model = prepare_for_inference(model, device)
        seconds.append(median_seconds(lambda: model(batch), device, repeats))
        with torch.no_grad():
            found = len(model(batch)[0]["instances"])
        rows.append([name, f"{seconds[-1]:.3f}", f"{1 / seconds[-1]:.2f}", str(found)])
    # The decoder runs on the whole image; the head and predictor once per detection.
    return rows + [["DensePose branch alone", f"{seconds[1] - seconds[0]:.3f}", "-", str(found)]]


def training_row(cfg, device: torch.device, repeats: int) -> List[str]:
    """One batch-2 iteration with every loss (the samples carry no DensePose points: the branch runs on the
    foreground ROIs with zero-valued point losses)."""
    seconds = training_seconds(cfg, device, repeats)
    return ["training iteration (batch 2)", f"{seconds:.3f}", f"{2 / seconds:.2f}", "-"]


def main() -> None:
    args = device_parser(__doc__.splitlines()[0]).parse_args()
    for name in args.devices:
        device = torch.device(name)
        cfg = load_cfg(str(CONFIG), ["MODEL.WEIGHTS", "", "MODEL.DEVICE", name, "SOLVER.BASE_LR", TRAINING_LR,
                                     "INPUT.RANDOM_FLIP", "none"])
        rows = inference_rows(cfg, device, args.repeats) + [training_row(cfg, device, args.repeats)]
        text = (f"Machine: {machine(device if device.type == 'cuda' else None)}.\n"
                f"Medians of {args.repeats} runs after one warm-up; random weights; inference form; input "
                f"data/samples/coco 000000000785.jpg at test size 800x1205. Peak memory: "
                f"{peak_memory_mb(device):.0f} MiB.\n\n"
                + format_table(["densepose_rcnn_R_50_FPN_s1x", "s / image", "images/s", "detections"], rows))
        print(text)
        if args.write:
            write_section(f"DensePose R-CNN, {'GPU' if device.type == 'cuda' else 'CPU'}", text)


if __name__ == "__main__":
    main()
