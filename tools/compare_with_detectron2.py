"""Check that posekit's DensePose R-CNN gives detectron2's results on the same weights and images (issue 18 item 2).

    python tools/compare_with_detectron2.py compare D2_CONFIG CONFIG WEIGHTS IMAGE [IMAGE ...] [--random-weights SEED]
    python tools/compare_with_detectron2.py record D2_CONFIG WEIGHTS IMAGE --output FILE.npz [--random-weights SEED]

Needs an environment where ``detectron2`` and its ``projects/DensePose`` package ``densepose`` import (torchvision
included). ``compare`` runs detectron2's DefaultPredictor (config D2_CONFIG, loaded with detectron2's get_cfg and
add_densepose_config) and its chart-result conversion (ToChartResultConverter) on each image, then posekit's
DensePoseEstimator (config CONFIG, which may be the very same yaml file), and prints per image the largest box,
score and U/V differences and the label agreement against the contract: boxes within 0.01 px, scores within 1e-4,
labels equal on at least 99.5 % of each box's pixels, U and V within 2e-3 where labels agree (detectron2's U, V
clamped to [0, 1] as posekit's are, docs/differences.md). Exit code 1 when a figure is outside.

``record`` writes detectron2's results for one image (boxes, scores and each detection's labels and U, V) to an npz
file, the reference of tests/models/test_detectron2_equivalence.py.

``--random-weights SEED`` first writes WEIGHTS (``{"model": state_dict}``) from detectron2's own initialisation of
D2_CONFIG's model, seeded, with FrozenBN statistics measured on the first image (random scales and shifts) and a box
classifier scaled so that scores spread over (0, 1) and detections exist; the contract holds for any weights, so no trained checkpoint is needed.
"""
import argparse
import os
import sys
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch

from posekit.apis.cli import run_tool
from posekit.apis.densepose.estimator import DensePoseEstimator
from posekit.config import load_cfg
from posekit.data.detection_mapper import read_image
from posekit.utils.io import atomic_write

BOX_TOLERANCE = 0.01  # px
SCORE_TOLERANCE = 1e-4
LABEL_AGREEMENT = 0.995  # fraction of each box's pixels
UV_TOLERANCE = 2e-3
# --random-weights: FrozenBN statistics drawn around identity, and the person logit's scale and offset that give
# scores across (0, 1) on random features.
BN_SPREAD = 0.2
CLASS_LOGIT_SCALE = 3.0
CLASS_LOGIT_OFFSET = 1.0

Person = Dict[str, np.ndarray]


def detectron2_cfg(config: str, weights: str):
    """detectron2's config of ``config`` with DensePose's keys, the weights and the CPU."""
    from densepose import add_densepose_config
    from detectron2.config import get_cfg

    cfg = get_cfg()
    add_densepose_config(cfg)
    cfg.merge_from_file(config)
    cfg.MODEL.WEIGHTS = weights
    cfg.MODEL.DEVICE = "cpu"
    cfg.freeze()
    return cfg


def write_random_weights(config: str, path: str, seed: int, image: np.ndarray) -> None:
    """detectron2's seeded initialisation of the model, FrozenBN set from ``image``, the box classifier spread."""
    from detectron2.engine import DefaultPredictor
    from detectron2.layers import FrozenBatchNorm2d

    torch.manual_seed(seed)
    predictor = DefaultPredictor(detectron2_cfg(config, ""))
    model = predictor.model
    generator = torch.Generator().manual_seed(seed)

    def normalise_input(norm: FrozenBatchNorm2d, inputs: tuple) -> None:
        # Statistics of what reaches the norm, as a trained network's would be: activations stay O(1) through
        # the randomly initialised ResNet instead of growing block after block.
        norm.running_mean.copy_(inputs[0].mean(dim=(0, 2, 3)))
        norm.running_var.copy_(inputs[0].var(dim=(0, 2, 3)))
        for name, centre in (("weight", 1.0), ("bias", 0.0)):
            buffer = getattr(norm, name)
            buffer.copy_(centre + BN_SPREAD * (2 * torch.rand(buffer.shape, generator=generator) - 1))

    norms = [m for m in model.modules() if isinstance(m, FrozenBatchNorm2d)]
    hooks = [norm.register_forward_pre_hook(normalise_input) for norm in norms]
    predictor(np.ascontiguousarray(image[:, :, ::-1]))
    for hook in hooks:
        hook.remove()
    classifier = model.roi_heads.box_predictor.cls_score
    classifier.weight.mul_(CLASS_LOGIT_SCALE)
    classifier.bias[0] += CLASS_LOGIT_OFFSET
    state = {name: tensor.contiguous() for name, tensor in model.state_dict().items()}
    atomic_write(path, lambda tmp: torch.save({"model": state}, tmp))


def detectron2_people(predictor, rgb: np.ndarray) -> List[Person]:
    """detectron2's DefaultPredictor on the BGR image and its chart results, by decreasing score."""
    from densepose.converters import ToChartResultConverter

    instances = predictor(np.ascontiguousarray(rgb[:, :, ::-1]))["instances"]
    order = torch.argsort(instances.scores, descending=True, stable=True).tolist()
    people = []
    for i in order:
        result = ToChartResultConverter.convert(instances.pred_densepose[i], instances.pred_boxes[i])
        people.append({"bbox": instances.pred_boxes.tensor[i].numpy(), "score": float(instances.scores[i]),
                       "labels": result.labels.numpy().astype(np.uint8), "uv": result.uv.clamp(0, 1).numpy()})
    return people


@dataclass
class Differences:
    """The figures of one image, compared with the contract by ``within_contract``."""

    detections: int
    posekit_detections: int
    box: float = 0.0
    score: float = 0.0
    label_agreement: float = 1.0  # the worst detection's
    uv: float = 0.0

    def within_contract(self) -> bool:
        """Same detection count and every figure within its tolerance."""
        return (self.detections == self.posekit_detections and self.box <= BOX_TOLERANCE
                and self.score <= SCORE_TOLERANCE and self.label_agreement >= LABEL_AGREEMENT
                and self.uv <= UV_TOLERANCE)


def _label_and_uv_differences(reference: Person, candidate: Person) -> tuple:
    """(fraction of equal labels, largest U/V difference where they agree) over the reference box's pixels."""
    ref_labels, labels = reference["labels"], candidate["labels"]
    height, width = ref_labels.shape
    common = (slice(0, min(height, labels.shape[0])), slice(0, min(width, labels.shape[1])))
    agree = ref_labels[common] == labels[common]
    uv_gap = np.abs(reference["uv"][(slice(None),) + common] - candidate["uv"][(slice(None),) + common])
    uv = float(uv_gap[:, agree].max()) if agree.any() else 0.0
    return float(agree.sum()) / ref_labels.size, uv


def differences(reference: Sequence[Person], candidate: Sequence[Person]) -> Differences:
    """Each reference detection paired with the candidate whose box is closest (largest coordinate gap)."""
    result = Differences(len(reference), len(candidate))
    unpaired = list(range(len(candidate)))
    for person in reference:
        if not unpaired:
            break
        gaps = [float(np.abs(person["bbox"] - candidate[j]["bbox"]).max()) for j in unpaired]
        match = candidate[unpaired.pop(int(np.argmin(gaps)))]
        agreement, uv = _label_and_uv_differences(person, match)
        result.box = max(result.box, min(gaps))
        result.score = max(result.score, abs(person["score"] - match["score"]))
        result.label_agreement = min(result.label_agreement, agreement)
        result.uv = max(result.uv, uv)
    return result


def compare(args: argparse.Namespace) -> int:
    """Print each image's differences; 1 if any is outside the contract."""
    from detectron2.engine import DefaultPredictor

    predictor = DefaultPredictor(detectron2_cfg(args.d2_config, args.weights))
    estimator = DensePoseEstimator(load_cfg(args.config, ["MODEL.WEIGHTS", args.weights, "MODEL.DEVICE", "cpu"]
                                            + args.opts))
    failed = False
    print(f"contract: box <= {BOX_TOLERANCE} px, score <= {SCORE_TOLERANCE:g}, labels >= {LABEL_AGREEMENT:.1%}, "
          f"U/V <= {UV_TOLERANCE:g}")
    for path in args.images:
        rgb = read_image(path)
        found = differences(detectron2_people(predictor, rgb), estimator.predict(rgb))
        ok = found.within_contract()
        failed |= not ok
        print(f"{path}: {found.detections} detections (posekit {found.posekit_detections}), box {found.box:.2e} px, "
              f"score {found.score:.2e}, labels {found.label_agreement:.4%}, U/V {found.uv:.2e}  "
              f"{'OK' if ok else 'OUTSIDE THE CONTRACT'}")
    return 1 if failed else 0


def record(args: argparse.Namespace) -> int:
    """Write detectron2's results on one image as flat arrays (``labels_<i>``, ``uv_<i>`` per detection)."""
    from detectron2.engine import DefaultPredictor

    people = detectron2_people(DefaultPredictor(detectron2_cfg(args.d2_config, args.weights)), read_image(args.image))
    arrays = {"boxes": np.stack([p["bbox"] for p in people]).astype(np.float32) if people
              else np.zeros((0, 4), np.float32),
              "scores": np.array([p["score"] for p in people], np.float32)}
    for i, person in enumerate(people):
        arrays[f"labels_{i}"] = person["labels"]
        arrays[f"uv_{i}"] = person["uv"].astype(np.float32)

    def write(tmp: str) -> None:
        with open(tmp, "wb") as file:
            np.savez_compressed(file, **arrays)

    atomic_write(args.output, write)
    print(f"{args.output}: {len(people)} detections, scores {arrays['scores'].min(initial=1):.3f}.."
          f"{arrays['scores'].max(initial=0):.3f}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The compare / record command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    actions = parser.add_subparsers(dest="action", required=True)
    compare_parser = actions.add_parser("compare", help="compare posekit with detectron2 on images")
    compare_parser.add_argument("d2_config", help="detectron2 DensePose yaml")
    compare_parser.add_argument("config", help="posekit yaml (may be the detectron2 file itself)")
    compare_parser.add_argument("weights", help="detectron2 checkpoint (model_final.pth or .pkl)")
    compare_parser.add_argument("images", nargs="+", help="image files")
    compare_parser.add_argument("--opts", nargs=argparse.REMAINDER, default=[],
                                help="posekit config overrides: KEY VALUE ...")
    record_parser = actions.add_parser("record", help="write detectron2's results on one image to an npz file")
    record_parser.add_argument("d2_config", help="detectron2 DensePose yaml")
    record_parser.add_argument("weights", help="detectron2 checkpoint")
    record_parser.add_argument("image", help="image file")
    record_parser.add_argument("--output", required=True, help="npz file to write")
    for action in (compare_parser, record_parser):
        action.add_argument("--random-weights", type=int, default=None, metavar="SEED",
                            help="first write WEIGHTS from detectron2's seeded initialisation (docstring)")
        action.add_argument("--debug", action="store_true", help="show tracebacks for bad input")
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    """Run the chosen action."""
    args = build_parser().parse_args(argv)
    torch.set_grad_enabled(False)
    if args.random_weights is not None:
        first_image = args.images[0] if args.action == "compare" else args.image
        write_random_weights(args.d2_config, args.weights, args.random_weights, read_image(first_image))
    if not os.path.isfile(args.weights):
        print(f"error: weights file not found: {args.weights}", file=sys.stderr)
        return 2
    return compare(args) if args.action == "compare" else record(args)


if __name__ == "__main__":
    run_tool(main)
