"""LCR-Net inference speed per image (InTheWild-ResNet50 settings, short side 800), split into the network and the
pose proposals integration (PPI).

    PYTHONPATH=lib python bench/lcrnet.py [--devices cpu cuda] [--repeats N] [--write]

Input: the Human3.6M sample S1 image (1000x1002 -> 800x798), batch 1, random weights (the release's are not
redistributable), the model in its inference form (AffineChannel folded into the convolutions, channels_last:
what LCRNetEstimator runs), RPN keeping 1000 RoIs. "network" is the forward with the decode of every (RoI,
class) pose in original pixels (1000 x 20 x 13 joints); "PPI" integrates the 1000 best-scoring (RoI, class)
proposals (the score threshold set to the 1000th score: random weights give each RoI one class of probability
about 1 and the others about 0, so the threshold is 0 and most proposals score 0) with the release's InTheWild
parameters, both grouping modes. Goal
(issue 21): PPI on 1000 proposals under 10 % of the network time.
--write replaces the "## LCR-Net, CPU" / "## LCR-Net, GPU" section of bench/RESULTS.md.
"""
from pathlib import Path
from typing import List

import numpy as np
import torch

from common import device_parser, format_table, machine, median_seconds, write_section
from posekit.config import load_cfg
from posekit.data.detection_mapper import read_image
from posekit.data.lcrnet_mapper import LCRNetMapper
from posekit.models import build_model, prepare_for_inference
from posekit.models.lcrnet import POSE_TRANSFORMS
from posekit.models.lcrnet.ppi import integrate_poses

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "experiments" / "lcrnet" / "InTheWild-ResNet50.yaml"
IMAGE = REPO / "data" / "samples" / "h36m" / "S1" / "S1_Directions_1.54138969" / "S1_Directions_1.54138969_000001.jpg"
PROPOSALS = 1000
GOAL = 0.10


def ppi_seconds(model, instances, grouping: str, device: torch.device, repeats: int) -> float:
    """Median seconds of the PPI on the PROPOSALS best (RoI, class) pairs of ``instances``."""
    scores = instances.scores.double().cpu().numpy()
    threshold = float(np.sort(scores[:, 1:].ravel())[-PROPOSALS])
    kwargs = dict(model.ppi.kwargs, grouping_boxes=grouping, score_threshold=threshold, min_proposals=0)
    arrays = (scores, instances.pred_boxes.cpu().numpy(), instances.pred_pose2d.cpu().numpy(),
              instances.pred_pose3d.cpu().numpy())
    return median_seconds(lambda: integrate_poses(*arrays, instances.image_size, **kwargs), device, repeats)


def rows_for(device: torch.device, repeats: int) -> List[List[str]]:
    """The network row and one PPI row per grouping mode."""
    cfg = load_cfg(str(CONFIG), ["MODEL.WEIGHTS", "", "MODEL.DEVICE", device.type])
    torch.manual_seed(0)
    model = prepare_for_inference(build_model(cfg), device)
    record = {"file_name": str(IMAGE), "image_id": 0, "annotations": []}
    item = LCRNetMapper.from_config(cfg, False, POSE_TRANSFORMS).map_image(read_image(str(IMAGE)), record)

    def network():
        with torch.inference_mode():
            return model([item])[0]["instances"]
    seconds = median_seconds(network, device, repeats)
    instances = network()
    rows = [["network (+ decode)", f"{len(instances)} RoIs", f"{seconds:.3f}", "-"]]
    for grouping in ("roi", "pose"):
        ppi = ppi_seconds(model, instances, grouping, device, repeats)
        rows.append([f"PPI, grouping by {grouping} boxes", f"{PROPOSALS} proposals", f"{ppi:.3f}",
                     f"{100 * ppi / seconds:.1f} %"])
    return rows


def main() -> None:
    args = device_parser(__doc__.splitlines()[0]).parse_args()
    for name in args.devices:
        device = torch.device(name)
        rows = rows_for(device, args.repeats)
        shares = [float(row[3].rstrip(" %")) / 100 for row in rows[1:]]
        verdict = "met" if max(shares) < GOAL else "NOT met"
        text = (f"Machine: {machine(device if device.type == 'cuda' else None)}.\n"
                f"Medians of {args.repeats} runs after one warm-up; random weights; inference form; input "
                f"data/samples/h36m S1 (1000x1002) at test size 800x798; InTheWild-ResNet50 settings.\n\n"
                + format_table(["LCR-Net R-50-C4", "work", "s / image", "of network"], rows)
                + f"\n\nGoal (issue 21), PPI on {PROPOSALS} proposals under {GOAL:.0%} of the network time: {verdict}. "
                f"With random weights the RPN's NMS keeps fewer RoIs than the {PROPOSALS} of a trained model, so the "
                f"network row is a lower bound and the PPI shares upper bounds; the PPI rows always integrate "
                f"{PROPOSALS} proposals.")
        print(text)
        if args.write:
            write_section(f"LCR-Net, {'GPU' if device.type == 'cuda' else 'CPU'}", text)


if __name__ == "__main__":
    main()
