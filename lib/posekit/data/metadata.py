"""Keypoint sets: joint names, flip pairs, OKS sigmas, drawing skeletons and rescore links, per data set.

Nothing else in posekit assumes a joint count: a custom keypoint set is one more ``KeypointSet`` entry
registered with ``register_keypoint_set``.
"""
from dataclasses import dataclass, field
from typing import Dict, List, Sequence, Tuple

from ..utils.errors import ConfigError

Pair = Tuple[int, int]


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

    def __post_init__(self) -> None:
        k = len(self.joint_names)
        if len(self.sigmas) != k:
            raise ConfigError(f"keypoint set {self.name}: {len(self.sigmas)} sigmas for {k} joints")
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
        raise ConfigError(f"unknown keypoint set '{name}'; known: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def keypoint_set_from_cfg(cfg) -> KeypointSet:
    """The keypoint set a config uses: DATASET.KEYPOINT_SET, else the one its DATASET.DATASET names."""
    name = cfg.DATASET.KEYPOINT_SET
    if not name:
        dataset = cfg.DATASET.DATASET
        # Official configs select flip tables by substring of the data-set name.
        name = "crowdpose" if "crowd" in dataset else "coco" if "coco" in dataset else dataset
    keypoint_set = get_keypoint_set(name)
    if keypoint_set.num_joints != cfg.DATASET.NUM_JOINTS:
        raise ConfigError(f"DATASET.NUM_JOINTS is {cfg.DATASET.NUM_JOINTS} but keypoint set "
                          f"'{name}' has {keypoint_set.num_joints} joints; set DATASET.KEYPOINT_SET")
    return keypoint_set


for _set in (COCO, CROWDPOSE, DEEPFASHION2_CAT1):
    register_keypoint_set(_set)
