"""Keypoint sets: joint names, flip pairs, OKS sigmas, drawing skeletons and rescore links, per data set.

Nothing else in posekit assumes a joint count. A custom keypoint set is a yaml or json file named by
``DATASET.KEYPOINT_SET`` (``load_keypoint_set_file``, format in README "Your own data"), one more entry
registered with ``register_keypoint_set``, or, for ``DATASET.DATASET custom`` without a set, built from the
names in the annotation json's ``categories[].keypoints`` (``keypoint_set_from_names``).
"""
import json
import logging
import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

import yaml

from ..utils.errors import ConfigError, DataError
from .annotations import load_json
from .dataset_paths import custom_annotation_file, given_paths

Pair = Tuple[int, int]
Colour = Tuple[int, int, int]
logger = logging.getLogger(__name__)
# OKS sigma of every joint of a set built from json names (no sigmas there): between COCO's face values
# (0.025-0.035) and its limb values (0.062-0.107). Documented in README "Your own data".
DEFAULT_SIGMA = 0.05
# The rescore net normalises by links 9 and 11 (official), so a set's rescore links are either none or 12+.
MIN_RESCORE_LINKS = 12
# Sets built from annotation jsons, by (path, modification time, size): a json of hundreds of megabytes is read
# once per process, not by every part that asks for the set (data, model, evaluator, estimator).
_JSON_SETS: Dict[Tuple[str, int, int], "KeypointSet"] = {}


@dataclass(frozen=True)
class KeypointSet:
    """Everything posekit needs to know about one data set's keypoints (0-based indices)."""

    name: str
    joint_names: Tuple[str, ...]
    flip_pairs: Tuple[Pair, ...]
    sigmas: Tuple[float, ...]
    skeleton: Tuple[Pair, ...]
    # Links whose vectors and lengths feed the rescore net; links 9 and 11 normalise them (official).
    rescore_links: Tuple[Pair, ...] = field(default=())
    # (R, G, B) per skeleton link for drawing; empty: colours spread around the hue circle.
    limb_colours: Tuple[Colour, ...] = field(default=())

    def __post_init__(self) -> None:
        k = len(self.joint_names)
        if len(self.sigmas) != k:
            raise ConfigError(f"keypoint set {self.name}: {len(self.sigmas)} sigmas for {k} joints")
        if self.limb_colours and len(self.limb_colours) != len(self.skeleton):
            raise ConfigError(f"keypoint set {self.name}: {len(self.limb_colours)} colours for "
                              f"{len(self.skeleton)} skeleton links")
        for a, b in self.flip_pairs + self.skeleton + self.rescore_links:
            if not (0 <= a < k and 0 <= b < k):
                raise ConfigError(f"keypoint set {self.name}: pair ({a}, {b}) outside 0..{k - 1}")

    @property
    def num_joints(self) -> int:
        """Number of keypoints K (the centre is not one of them)."""
        return len(self.joint_names)

    @property
    def flip_index(self) -> List[int]:
        """Index list mapping joint j to its mirror image (itself when unpaired)."""
        index = list(range(self.num_joints))
        for a, b in self.flip_pairs:
            index[a], index[b] = b, a
        return index

    @property
    def flip_index_with_center(self) -> List[int]:
        """``flip_index`` followed by the centre channel K, which maps to itself."""
        return self.flip_index + [self.num_joints]

    @property
    def rescore_feature_size(self) -> int:
        """Input width of the rescore net: 3 numbers per link plus one score per joint."""
        return 3 * len(self.rescore_links) + self.num_joints


def _pairs(one_based: Sequence[Sequence[int]]) -> Tuple[Pair, ...]:
    return tuple((a - 1, b - 1) for a, b in one_based)


COCO = KeypointSet(
    name="coco",
    joint_names=("nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder",
                 "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
                 "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle"),
    flip_pairs=((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16)),
    sigmas=(0.026, 0.025, 0.025, 0.035, 0.035, 0.079, 0.079, 0.072, 0.072, 0.062, 0.062,
            0.107, 0.107, 0.087, 0.087, 0.089, 0.089),
    # The skeleton in the COCO annotation files (1-based there).
    skeleton=_pairs([[16, 14], [14, 12], [17, 15], [15, 13], [12, 13], [6, 12], [7, 13], [6, 7],
                     [6, 8], [7, 9], [8, 10], [9, 11], [2, 3], [1, 2], [1, 3], [2, 4], [3, 5],
                     [4, 6], [5, 7]]),
    rescore_links=((0, 1), (0, 2), (1, 2), (1, 3), (2, 4), (3, 5), (4, 6), (5, 6), (5, 7),
                   (5, 11), (6, 8), (6, 12), (7, 9), (8, 10), (11, 12), (11, 13), (12, 14),
                   (13, 15), (14, 16)),
)

CROWDPOSE = KeypointSet(
    name="crowdpose",
    joint_names=("left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist",
                 "right_wrist", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle",
                 "right_ankle", "head", "neck"),
    flip_pairs=((0, 1), (2, 3), (4, 5), (6, 7), (8, 9), (10, 11)),
    # The sigmas of the CrowdPose evaluation API.
    sigmas=(0.079, 0.079, 0.072, 0.072, 0.062, 0.062, 0.107, 0.107, 0.087, 0.087, 0.089, 0.089,
            0.079, 0.079),
    skeleton=((12, 13), (13, 0), (13, 1), (0, 2), (1, 3), (2, 4), (3, 5), (0, 6), (1, 7), (6, 8),
              (7, 9), (8, 10), (9, 11), (6, 7)),
    rescore_links=((12, 13), (13, 0), (13, 1), (0, 2), (1, 3), (2, 4), (3, 5), (0, 6), (1, 7),
                   (6, 8), (7, 9), (8, 10), (9, 11), (6, 7), (0, 1)),
)

# DeepFashion2 category 1 ("short sleeve top"): 25 landmarks numbered 1..25 around the garment outline
# (1 collar centre, 2..6 neckline, 7..25 sleeves, sides and hem). Flip pairs and skeleton: the DeepFashion2
# keypoint configs of HRNet-for-Fashion-Landmark-Estimation and MMPose (deepfashion2.py); sigmas: the first
# 25 entries of the OKS sigmas in DeepFashion2's own evaluation API (deepfashion2_api cocoeval.py).
DEEPFASHION2_CAT1 = KeypointSet(
    name="deepfashion2_cat1",
    joint_names=tuple(f"short_sleeve_top_{i}" for i in range(1, 26)),
    flip_pairs=_pairs([[2, 6], [3, 5], [7, 25], [8, 24], [9, 23], [10, 22], [11, 21], [12, 20], [13, 19],
                       [14, 18], [15, 17]]),
    sigmas=(0.012, 0.0158, 0.0169, 0.0165, 0.0169, 0.0158, 0.0298, 0.0329, 0.0321, 0.0323, 0.034, 0.0388,
            0.0452, 0.0574, 0.0492, 0.0352, 0.0492, 0.0574, 0.0452, 0.0388, 0.034, 0.0323, 0.0321, 0.0329,
            0.0298),
    skeleton=_pairs([[1, 2], [2, 7], [7, 8], [8, 9], [9, 10], [10, 11], [11, 12], [12, 13], [13, 14],
                     [14, 15], [15, 16], [16, 17], [17, 18], [18, 19], [19, 20], [20, 21], [21, 22],
                     [22, 23], [23, 24], [24, 25], [25, 6], [6, 1], [2, 3], [3, 4], [4, 5], [5, 6]]),
)

_REGISTRY: Dict[str, KeypointSet] = {}


def register_keypoint_set(keypoint_set: KeypointSet) -> None:
    """Make ``keypoint_set`` available by name to configs (``DATASET.KEYPOINT_SET``)."""
    _REGISTRY[keypoint_set.name] = keypoint_set


def get_keypoint_set(name: str) -> KeypointSet:
    """Return the registered keypoint set called ``name``."""
    if name not in _REGISTRY:
        raise ConfigError(f"unknown keypoint set '{name}'; known: {', '.join(sorted(_REGISTRY))} (or the path of a "
                          f".yaml / .json keypoint set file)")
    return _REGISTRY[name]


def is_keypoint_set_file(value: str) -> bool:
    """Whether a DATASET.KEYPOINT_SET value names a file (.yaml, .yml or .json) rather than a registered set."""
    return os.path.splitext(value)[1].lower() in (".yaml", ".yml", ".json")


def _read_mapping(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle) if path.lower().endswith(".json") else yaml.safe_load(handle)
    except FileNotFoundError:
        raise ConfigError(f"DATASET.KEYPOINT_SET: keypoint set file not found: {path}") from None
    except (json.JSONDecodeError, yaml.YAMLError) as err:
        raise ConfigError(f"{path}: not a valid keypoint set file ({str(err).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a keypoint set file holds a mapping (name, keypoints, flip_pairs, sigmas, "
                          f"skeleton), got {type(data).__name__}")
    return data


def _name_pairs(data: dict, key: str, index: Dict[str, int], where: str) -> Tuple[Pair, ...]:
    """``data[key]``: a list of [name, name] pairs as index pairs (absent: none)."""
    pairs = data.get(key) or []
    if not isinstance(pairs, list):
        raise ConfigError(f"{where}: '{key}' must be a list of [name, name] pairs")
    result = []
    for pair in pairs:
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise ConfigError(f"{where}: '{key}' entry {pair!r} is not a [name, name] pair")
        unknown = [name for name in pair if name not in index]
        if unknown:
            raise ConfigError(f"{where}: '{key}' entry {list(pair)} names {', '.join(map(str, unknown))}, "
                              f"not in 'keypoints'")
        result.append((index[pair[0]], index[pair[1]]))
    return tuple(result)


def load_keypoint_set_file(path: str) -> KeypointSet:
    """A keypoint set from a yaml/json file: name, keypoints, flip_pairs, sigmas, skeleton (pairs of names),
    optional colors (one [R, G, B] per skeleton link) and rescore_links (pairs of names, 12 or more)."""
    data = _read_mapping(path)
    missing = [key for key in ("name", "keypoints", "sigmas") if key not in data]
    if missing:
        raise ConfigError(f"{path}: missing {', '.join(missing)} (a keypoint set file needs name, keypoints, "
                          f"flip_pairs, sigmas, skeleton)")
    names = data["keypoints"]
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names) \
            or len(set(names)) != len(names):
        raise ConfigError(f"{path}: 'keypoints' must be a non-empty list of distinct names")
    index = {name: i for i, name in enumerate(names)}
    sigmas = data["sigmas"]
    if not isinstance(sigmas, list) or not all(isinstance(v, (int, float)) and v > 0 for v in sigmas):
        raise ConfigError(f"{path}: 'sigmas' must be a list of positive numbers, one per keypoint")
    rescore_links = _name_pairs(data, "rescore_links", index, path)
    if rescore_links and len(rescore_links) < MIN_RESCORE_LINKS:
        raise ConfigError(f"{path}: 'rescore_links' needs at least {MIN_RESCORE_LINKS} links (the rescore net "
                          f"normalises by links 9 and 11), got {len(rescore_links)}")
    colours = data.get("colors") or []
    if not all(isinstance(c, (list, tuple)) and len(c) == 3 for c in colours):
        raise ConfigError(f"{path}: 'colors' must be a list of [R, G, B] triples, one per skeleton link")
    return KeypointSet(name=str(data["name"]), joint_names=tuple(names),
                       flip_pairs=_name_pairs(data, "flip_pairs", index, path),
                       sigmas=tuple(float(v) for v in sigmas),
                       skeleton=_name_pairs(data, "skeleton", index, path), rescore_links=rescore_links,
                       limb_colours=tuple(tuple(int(v) for v in c) for c in colours))


def _mirrored(name: str) -> Optional[str]:
    """``name`` with its 'left' word swapped for 'right' ('_'-separated words), or None when it has none."""
    words = name.split("_")
    if "left" not in words:
        return None
    return "_".join("right" if word == "left" else word for word in words)


def keypoint_set_from_names(name: str, joint_names: Sequence[str],
                            skeleton: Sequence[Sequence[int]] = ()) -> KeypointSet:
    """A set from keypoint names alone: flip pairs from left/right name pairs, DEFAULT_SIGMA for every joint,
    ``skeleton`` 1-based as in COCO json categories, no rescore links."""
    index = {joint: i for i, joint in enumerate(joint_names)}
    flip_pairs = tuple((i, index[_mirrored(joint)]) for i, joint in enumerate(joint_names)
                       if _mirrored(joint) in index)
    links = tuple((a - 1, b - 1) for a, b in skeleton if 1 <= a <= len(joint_names) and 1 <= b <= len(joint_names))
    return KeypointSet(name=name, joint_names=tuple(joint_names), flip_pairs=flip_pairs,
                       sigmas=(DEFAULT_SIGMA,) * len(joint_names), skeleton=links)


def json_keypoint_categories(categories: Any) -> List[dict]:
    """The categories of an annotation json that list keypoint names."""
    if not isinstance(categories, list):
        return []
    return [c for c in categories if isinstance(c, dict) and isinstance(c.get("keypoints"), list)]


def keypoint_set_from_json_categories(categories: Any, path: str) -> KeypointSet:
    """The set named by an annotation json's ``categories[].keypoints`` (all alike); one warning on the sigmas."""
    listed = json_keypoint_categories(categories)
    if not listed:
        raise DataError(f"{path}: no categories[].keypoints names to build the keypoint set from; set "
                        f"DATASET.KEYPOINT_SET to a keypoint set file")
    first = listed[0]
    for other in listed[1:]:
        if other["keypoints"] != first["keypoints"]:
            raise DataError(f"{path}: categories {first.get('id')} and {other.get('id')} list different keypoints "
                            f"({first['keypoints']} vs {other['keypoints']})")
    name = os.path.splitext(os.path.basename(path))[0]
    keypoint_set = keypoint_set_from_names(name, first["keypoints"], first.get("skeleton") or ())
    logger.warning("keypoint set built from %s: %d keypoints, %d flip pairs from left/right names, every OKS "
                   "sigma %.3g (set DATASET.KEYPOINT_SET to a keypoint set file for your own)", path,
                   keypoint_set.num_joints, len(keypoint_set.flip_pairs), DEFAULT_SIGMA)
    return keypoint_set


def check_json_keypoint_names(keypoint_set: KeypointSet, categories: Any, path: str) -> None:
    """Every ``categories[].keypoints`` of an annotation json must list the set's names in its order."""
    for category in json_keypoint_categories(categories):
        if list(category["keypoints"]) != list(keypoint_set.joint_names):
            raise DataError(f"{path}: category {category.get('id')} ('{category.get('name')}') lists keypoints "
                            f"{list(category['keypoints'])} but keypoint set '{keypoint_set.name}' has "
                            f"{list(keypoint_set.joint_names)} (same names in the same order needed; check "
                            f"DATASET.KEYPOINT_SET)")


def default_keypoint_set_name(dataset: str) -> str:
    """The registered set an official data-set name implies ('' for 'custom': the json's names decide)."""
    # Official configs select flip tables by substring of the data-set name.
    return "crowdpose" if "crowd" in dataset else "coco" if "coco" in dataset else \
        "" if dataset == "custom" else dataset


def keypoint_set_named(value: str) -> KeypointSet:
    """A DATASET.KEYPOINT_SET value: a keypoint set file or a registered name."""
    return load_keypoint_set_file(value) if is_keypoint_set_file(value) else get_keypoint_set(value)


def keypoint_set_from_cfg(cfg) -> KeypointSet:
    """The keypoint set a config uses: DATASET.KEYPOINT_SET (a registered name or a file), else the one its
    DATASET.DATASET names, else (``custom``) the one the categories of its training or test json list."""
    name = cfg.DATASET.KEYPOINT_SET or default_keypoint_set_name(cfg.DATASET.DATASET)
    keypoint_set = keypoint_set_named(name) if name else keypoint_set_from_json(_configured_json(cfg))
    if keypoint_set.num_joints != cfg.DATASET.NUM_JOINTS:
        raise ConfigError(f"DATASET.NUM_JOINTS is {cfg.DATASET.NUM_JOINTS} but keypoint set "
                          f"'{keypoint_set.name}' has {keypoint_set.num_joints} joints; set DATASET.KEYPOINT_SET "
                          f"or DATASET.NUM_JOINTS and MODEL.NUM_JOINTS")
    return keypoint_set


def keypoint_set_from_json(path: str) -> KeypointSet:
    """``keypoint_set_from_json_categories`` of an annotation json, read and announced once per file version."""
    status = os.stat(path)
    key = (os.path.abspath(path), status.st_mtime_ns, status.st_size)
    if key not in _JSON_SETS:
        data = load_json(path)
        categories = data.get("categories") if isinstance(data, dict) else None
        _JSON_SETS[key] = keypoint_set_from_json_categories(categories, path)
    return _JSON_SETS[key]


def _configured_json(cfg) -> str:
    """The first existing annotation json of the config (training, then test)."""
    candidates = [given_paths(cfg, is_train)[0] or custom_annotation_file(cfg.DATASET.ROOT, split)
                  for is_train, split in ((True, cfg.DATASET.TRAIN), (False, cfg.DATASET.TEST))]
    for path in candidates:
        if os.path.isfile(path):
            return path
    raise ConfigError(f"DATASET.KEYPOINT_SET is empty and no annotation json was found to read keypoint names from "
                      f"(looked for {', '.join(candidates)}); set DATASET.KEYPOINT_SET to a keypoint set file")


for _set in (COCO, CROWDPOSE, DEEPFASHION2_CAT1):
    register_keypoint_set(_set)
