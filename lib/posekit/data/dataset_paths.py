"""Where a keypoint split's annotation json and images are, when DATASET.* keys give them directly or the
``custom`` layout (``<ROOT>/annotations/<split>.json``, ``<ROOT>/images/<split>``) places them."""
import os
from typing import Tuple

from yacs.config import CfgNode


def under_root(root: str, path: str) -> str:
    """``path`` itself when absolute, else joined to DATASET.ROOT."""
    return path if os.path.isabs(path) else os.path.join(root, path)


def given_paths(cfg: CfgNode, is_train: bool) -> Tuple[str, str]:
    """(annotation file, image folder or zip) the config names directly for training or test ('' = the layout's)."""
    dataset = cfg.DATASET
    annotations, images = ((dataset.TRAIN_ANNOTATIONS, dataset.TRAIN_IMAGES) if is_train
                           else (dataset.TEST_ANNOTATIONS, dataset.TEST_IMAGES))
    return (under_root(dataset.ROOT, annotations) if annotations else "",
            under_root(dataset.ROOT, images) if images else "")


def custom_annotation_file(root: str, split: str) -> str:
    """The ``custom`` layout's annotation json of ``split``."""
    return os.path.join(root, "annotations", f"{split}.json")


def custom_image_folder(root: str, split: str) -> str:
    """The ``custom`` layout's image folder of ``split`` (its zip: the same name + '.zip')."""
    return os.path.join(root, "images", split)
