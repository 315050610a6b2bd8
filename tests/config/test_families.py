"""Config families: the detection rule, a detectron2-style family with a _BASE_ chain, DEKR's own checks."""
import logging
import textwrap

import pytest
from yacs.config import CfgNode as CN

from posekit.config import ConfigFamily, architecture_name, config_family, family_of, get_cfg, load_cfg
from posekit.config.family import register_config_family
from posekit.utils.errors import ConfigError


def add_toy_detector_config(cfg: CN) -> None:
    """A few keys of a detectron2 tree, as a detector family's add_*_config would add them."""
    cfg.VERSION = 2
    cfg.MODEL = CN()
    cfg.MODEL.META_ARCHITECTURE = "GeneralizedRCNN"
    cfg.MODEL.DEVICE = "cuda"
    cfg.MODEL.WEIGHTS = ""
    cfg.MODEL.BACKBONE = CN()
    cfg.MODEL.BACKBONE.NAME = "build_resnet_backbone"
    cfg.MODEL.ROI_HEADS = CN()
    cfg.MODEL.ROI_HEADS.NUM_CLASSES = 80
    cfg.SOLVER.BASE_LR = 0.001
    cfg.SOLVER.STEPS = (30000,)
    cfg.SOLVER.MAX_ITER = 40000
    cfg.DATASETS = CN()
    cfg.DATASETS.TRAIN = ()
    cfg.DATASETS.TEST = ()


def _finalize(cfg: CN, mapping) -> None:
    cfg.DEVICE = cfg.MODEL.DEVICE  # a family maps its own keys onto the base tree's


TOY = "toy_detector"


def _registered(name: str) -> bool:
    try:
        config_family(name)
        return True
    except ConfigError:
        return False


if not _registered(TOY):  # registered once per test session
    register_config_family(ConfigFamily(
        name=TOY, add_config=add_toy_detector_config,
        claims=lambda mapping: mapping.get("MODEL", {}).get("META_ARCHITECTURE") == "ToyRCNN",
        architecture_key="MODEL.META_ARCHITECTURE",
        run_folders=lambda cfg: (cfg.DATASETS.TRAIN[0] if cfg.DATASETS.TRAIN else "none", "rcnn"),
        finalize=_finalize, priority=2))  # above the detector family, which claims the same files


def write(tmp_path, name, text):
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return str(path)


def detectron2_chain(tmp_path):
    """Base-*.yaml -> child, shaped like detectron2's Base-DensePose-RCNN-FPN -> densepose_rcnn_R_50_FPN_s1x."""
    write(tmp_path, "Base-Toy-RCNN-FPN.yaml", """
        VERSION: 2
        MODEL:
          META_ARCHITECTURE: "ToyRCNN"
          BACKBONE:
            NAME: "build_resnet_fpn_backbone"
          ROI_HEADS:
            NUM_CLASSES: 1
        DATASETS:
          TRAIN: ("densepose_coco_2014_train", "densepose_coco_2014_valminusminival")
          TEST: ("densepose_coco_2014_minival",)
        SOLVER:
          BASE_LR: 0.01
          STEPS: (60000, 80000)
          MAX_ITER: 90000
        """)
    return write(tmp_path, "densepose/toy_rcnn_R_50_FPN_s1x.yaml", """
        _BASE_: "../Base-Toy-RCNN-FPN.yaml"
        MODEL:
          WEIGHTS: "detectron2://ImageNetPretrained/MSRA/R-50.pkl"
        SOLVER:
          MAX_ITER: 130000
          STEPS: (100000, 120000)
        """)


def test_a_detectron2_style_chain_loads_unmodified_into_its_family(tmp_path):
    cfg = load_cfg(detectron2_chain(tmp_path), ["MODEL.DEVICE", "cpu"])
    assert family_of(cfg).name == TOY and cfg.FAMILY == TOY
    assert architecture_name(cfg) == "ToyRCNN"
    assert cfg.SOLVER.MAX_ITER == 130000 and cfg.SOLVER.STEPS == (100000, 120000)  # child wins
    assert cfg.SOLVER.BASE_LR == 0.01 and cfg.MODEL.ROI_HEADS.NUM_CLASSES == 1  # base fills the rest
    assert cfg.DATASETS.TRAIN == ("densepose_coco_2014_train", "densepose_coco_2014_valminusminival")
    assert cfg.DEVICE == "cpu"  # the family's finalize
    assert "MODEL.NAME" not in str(cfg.MODEL.keys()) and "DATASET" not in cfg  # no DEKR section


def test_unknown_keys_are_checked_against_the_tree_of_the_files_family(tmp_path):
    child = detectron2_chain(tmp_path)
    with pytest.raises(ConfigError) as caught:
        load_cfg(child, ["SOLVER.MAX_ITERS", "10"])
    assert "SOLVER.MAX_ITERS" in str(caught.value) and "SOLVER.MAX_ITER" in str(caught.value)
    # A DEKR key is unknown to a detector file, and the message names the file.
    bad = write(tmp_path, "bad.yaml", '_BASE_: "Base-Toy-RCNN-FPN.yaml"\nTRAIN:\n  LR: 0.1\n')
    with pytest.raises(ConfigError, match=r"bad.yaml: unknown config key TRAIN"):
        load_cfg(bad)


def test_detection_rule(tmp_path):
    assert load_cfg(None).FAMILY == "dekr"  # no file: the default family
    plain = write(tmp_path, "plain.yaml", "MODEL:\n  NAME: hrnet_dekr\n")
    assert load_cfg(plain).FAMILY == "dekr"
    explicit = write(tmp_path, "explicit.yaml", f"FAMILY: {TOY}\nMODEL:\n  META_ARCHITECTURE: Other\n")
    assert load_cfg(explicit).FAMILY == TOY  # FAMILY names the family outright
    with pytest.raises(ConfigError, match="FAMILY: unknown family 'nope'; known: (.*, )?dekr, "):
        load_cfg(None, ["FAMILY", "nope"])


def test_family_defaults_are_the_base_tree_plus_the_section():
    dekr, toy = get_cfg("dekr"), get_cfg(TOY)
    for shared in ("OUTPUT_DIR", "LOG_DIR", "SEED", "DEVICE", "WORKERS", "CUDNN", "SOLVER"):
        assert shared in dekr and shared in toy
    assert "TRAIN" in dekr and "TRAIN" not in toy and "DATASETS" in toy and "DATASETS" not in dekr
    assert toy.SOLVER.CLIP_GRADIENTS.ENABLED is False and "BASE_LR" not in dekr.SOLVER


def test_dekr_warns_once_about_official_keys_it_does_not_honour(tmp_path, caplog):
    path = write(tmp_path, "gpus.yaml", "GPUS: (0,1,2,3)\nMULTIPROCESSING_DISTRIBUTED: False\n")
    with caplog.at_level(logging.WARNING):
        load_cfg(path)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "GPUS (0, 1, 2, 3)" in warnings[0] and "torchrun" in warnings[0]
    assert "MULTIPROCESSING_DISTRIBUTED False" in warnings[0] and "RANK" not in warnings[0]
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        load_cfg(None)
    assert not [r for r in caplog.records if r.levelno == logging.WARNING]


def test_dekr_model_and_dataset_joint_counts_must_agree():
    with pytest.raises(ConfigError, match=r"MODEL.NUM_JOINTS \(17\) differs from DATASET.NUM_JOINTS \(14\)"):
        load_cfg(None, ["DATASET.NUM_JOINTS", "14"])
    assert load_cfg(None, ["DATASET.NUM_JOINTS", "14", "MODEL.NUM_JOINTS", "14"]).MODEL.NUM_JOINTS == 14
