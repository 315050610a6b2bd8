"""The shipped detector and DensePose experiment files: each loads into its family and builds its network."""
from pathlib import Path

import pytest
import torch

from posekit.config import family_of, load_cfg
from posekit.models import build_model

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"
FILES = {
    "coco/detector/faster_rcnn_R_50_FPN_person_1x.yaml": ("detector", "build_resnet_fpn_backbone", 50),
    "coco/detector/faster_rcnn_R_50_C4_person_detectron.yaml": ("detector", "build_resnet_backbone", 50),
    "samples/detector_tiny_coco.yaml": ("detector", "build_resnet_fpn_backbone", 50),
    "densepose_coco/densepose_rcnn_R_50_FPN_s1x.yaml": ("densepose", "build_resnet_fpn_backbone", 50),
    "densepose_coco/densepose_rcnn_R_50_FPN_s1x_legacy.yaml": ("densepose", "build_resnet_fpn_backbone", 50),
    "densepose_coco/densepose_rcnn_R_101_FPN_s1x.yaml": ("densepose", "build_resnet_fpn_backbone", 101),
    "densepose_coco/densepose_rcnn_R_50_FPN_DL_s1x.yaml": ("densepose", "build_resnet_fpn_backbone", 50),
    "densepose_coco/densepose_rcnn_HRFPN_HRNet_w32_s1x.yaml": ("densepose", "build_hrfpn_backbone", 50),
    "samples/densepose_tiny.yaml": ("densepose", "build_resnet_fpn_backbone", 50),
}


def test_every_detector_and_densepose_file_is_covered():
    # Families built on DensePose R-CNN (KTN, AMANet) share the folder and pin their files in their own tests.
    shipped = {str(p.relative_to(EXPERIMENTS)) for folder in ("coco/detector", "densepose_coco")
               for p in (EXPERIMENTS / folder).glob("*.yaml") if not p.name.startswith("Base-")
               and family_of(load_cfg(str(p))).name in ("detector", "densepose")}
    assert shipped <= set(FILES)


@pytest.mark.parametrize("relative", sorted(FILES))
def test_loads_into_its_family_and_builds(relative):
    family, backbone, depth = FILES[relative]
    cfg = load_cfg(str(EXPERIMENTS / relative))
    assert family_of(cfg).name == family
    assert cfg.MODEL.BACKBONE.NAME == backbone and cfg.MODEL.RESNETS.DEPTH == depth
    with torch.device("meta"):  # no memory, no initialisation: the network's structure only
        model = build_model(cfg)
    assert sum(p.numel() for p in model.parameters()) > 0
