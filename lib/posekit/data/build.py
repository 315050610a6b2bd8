"""``build_dataset`` / ``build_test_dataset``: config -> data set, with the official data-set names."""
from typing import Callable, Dict

from yacs.config import CfgNode

from ..utils.errors import ConfigError
from .dataset_paths import given_paths
from .datasets import KeypointTestDataset, coco_layout, crowdpose_layout, custom_layout, dekr_train_dataset
from .datasets.keypoints import DatasetLayout
from .metadata import keypoint_set_from_cfg

LayoutFactory = Callable[[str, str, str], DatasetLayout]

# DATASET.DATASET (training) and DATASET.DATASET_TEST names of the official yamls, plus converted sets.
LAYOUTS: Dict[str, LayoutFactory] = {
    "coco_kpt": coco_layout,
    "coco": coco_layout,
    "rescore_coco": coco_layout,
    "crowd_pose_kpt": crowdpose_layout,
    "crowd_pose": crowdpose_layout,
    "rescore_crowdpose": crowdpose_layout,
    "deepfashion2_cat1": coco_layout,
    "custom": custom_layout,
}


def _layout(name: str, key: str, cfg: CfgNode, split: str, is_train: bool) -> DatasetLayout:
    """The named layout of ``split``, with the paths DATASET.* gives directly, checked to exist."""
    if name not in LAYOUTS:
        raise ConfigError(f"{key}: unknown data set '{name}'; known: {', '.join(sorted(LAYOUTS))}")
    layout = LAYOUTS[name](cfg.DATASET.ROOT, split, cfg.DATASET.DATA_FORMAT).with_given_paths(*given_paths(cfg, is_train))
    layout.check()
    return layout


def build_dataset(cfg: CfgNode, is_train: bool):
    """The DEKR training set of DATASET.TRAIN (``is_train``) or the test set of DATASET.TEST."""
    if not is_train:
        return build_test_dataset(cfg)
    layout = _layout(cfg.DATASET.DATASET, "DATASET.DATASET", cfg, cfg.DATASET.TRAIN, is_train=True)
    return dekr_train_dataset(layout, keypoint_set_from_cfg(cfg), cfg.DATASET, cfg.SEED)


def test_dataset_name(cfg: CfgNode) -> str:
    """The data set the test split is read as: ``custom`` for custom data (an official yaml's DATASET_TEST
    such as ``coco`` is left over from the file the user started from), else DATASET.DATASET_TEST, else
    DATASET.DATASET."""
    if cfg.DATASET.DATASET == "custom":
        return "custom"
    return cfg.DATASET.DATASET_TEST or cfg.DATASET.DATASET


def build_test_dataset(cfg: CfgNode) -> KeypointTestDataset:
    """Test images of DATASET.TEST read as ``test_dataset_name``."""
    name = test_dataset_name(cfg)
    key = "DATASET.DATASET_TEST" if name == cfg.DATASET.DATASET_TEST else "DATASET.DATASET"
    layout = _layout(name, key, cfg, cfg.DATASET.TEST, is_train=False)
    return KeypointTestDataset(layout, keypoint_set_from_cfg(cfg), cfg.DATASET.SKIP_MISSING_IMAGES)
