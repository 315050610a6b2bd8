"""Anchor poses (lcrnet.md 2): loading the released sets, building new ones from training poses, saving them.

An anchor set is stored as ``<name>_anchors.npz`` (``anchor_poses`` float32 (K, 5J) and every scalar as a 0-d
array under its dotted path, e.g. ``ppi_params.th_iou``) with a ``<name>_anchors.json`` sidecar (provenance,
the array's dtype and shape, ``ppi_params``), the pickle-free layout of ``data/lcrnet/README.md``. K and J
come from the array, K_full (the full-body classes; classes K_full+1..K are upper-body twins) from the
``num_full_body`` scalar when the file has one, else from the twin structure of the numbers themselves: the
released files say nothing, and their PPI down-weighting broke because code assumed it (lcrnet.md 4.4).
"""
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Optional, Union

import numpy as np
import torch

from ...utils.errors import ConfigError
from ...utils.io import atomic_write, atomic_write_json
from .codec import COORDINATES, LOWER_BODY_JOINTS, normalize_poses

PathLike = Union[str, Path]
PPI_PARAM_KEYS = ("th_pose3D", "th_iou", "iou_func", "min_mode_score", "th_persondetect")
# The PPI function defaults of the release (lcrnet.md 4.3), for sets built here without tuned values.
DEFAULT_PPI_PARAMS = {"th_pose3D": 0.3, "th_iou": 0.2, "iou_func": "bbox", "min_mode_score": 0.05,
                      "th_persondetect": 0.002}
# Upper-body twin box: the upper-body joints' bounds enlarged by this fraction of their size per side [our
# choice, lcrnet.md 2.2; the release's own margins are not recoverable].
UPPER_BODY_MARGIN = 0.1


@dataclass(frozen=True)
class AnchorSet:
    """K anchor poses (5J vectors, 2D in box units, 3D metres), the first K_full of them full-body."""

    poses: np.ndarray
    num_full_body: int
    ppi_params: Dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_PPI_PARAMS))
    source: str = ""

    @property
    def num_classes(self) -> int:
        """K, the number of anchor classes (background excluded)."""
        return self.poses.shape[0]

    @property
    def num_joints(self) -> int:
        """J, the joints of each anchor pose."""
        return self.poses.shape[1] // COORDINATES

    def ppi_kwargs(self) -> Dict[str, Any]:
        """The keyword arguments ``ppi.integrate_poses`` takes from this set (its ``ppi_params`` and K_full)."""
        params = self.ppi_params
        return {"num_full_body_classes": self.num_full_body, "th_pose3d": params["th_pose3D"],
                "th_iou": params["th_iou"], "iou_func": params["iou_func"],
                "min_mode_score": params["min_mode_score"], "th_persondetect": params["th_persondetect"]}


def count_full_body(poses: np.ndarray) -> int:
    """K_full read from the numbers: K/2 when rows K/2.. repeat the 3D of rows 0..K/2 exactly (upper-body twins,
    lcrnet.md 2.1), else K (no upper-body classes)."""
    num_classes, width = poses.shape
    half = num_classes // 2
    three_d = slice(2 * width // COORDINATES, width)
    if num_classes % 2 == 0 and half and np.array_equal(poses[half:, three_d], poses[:half, three_d]):
        return half
    return num_classes


def _check_poses(poses: np.ndarray, path: PathLike, num_joints: Optional[int]) -> None:
    if poses.ndim != 2 or poses.shape[0] == 0 or poses.shape[1] % COORDINATES:
        raise ConfigError(f"{path}: 'anchor_poses' must be a (K, 5J) array, got shape {tuple(poses.shape)}")
    joints = poses.shape[1] // COORDINATES
    if num_joints is not None and joints != num_joints:
        raise ConfigError(f"{path}: anchor poses have {joints} joints ({poses.shape[1]} numbers each), "
                          f"the model expects {num_joints} ({COORDINATES * num_joints} numbers)")
    if not np.isfinite(poses).all():
        raise ConfigError(f"{path}: 'anchor_poses' holds non-finite numbers")


def _scalars(npz: Any, prefix: str) -> Dict[str, Any]:
    return {key[len(prefix):]: npz[key].item() for key in npz.files if key.startswith(prefix)}


def _npz_of(path: Path) -> Path:
    """The npz holding the numbers of ``path`` (itself, or the npz next to a json sidecar)."""
    if path.suffix == ".json":
        return path.with_suffix(".npz")
    if path.suffix != ".npz":
        raise ConfigError(f"{path}: anchor sets are '.npz' files (or their '.json' sidecar)")
    return path


def _check_sidecar(path: Path, poses: np.ndarray, ppi_params: Dict[str, Any]) -> None:
    """The json next to the npz must describe the same array and PPI parameters."""
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
        described = meta["arrays"]["anchor_poses"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ConfigError(f"{path}: not an anchor-set json sidecar with arrays.anchor_poses ({err})") from None
    if list(described["shape"]) != list(poses.shape) or described["dtype"] != str(poses.dtype):
        raise ConfigError(f"{path}: describes anchor_poses {described['dtype']} {described['shape']}, but its npz "
                          f"holds {poses.dtype} {list(poses.shape)}")
    if meta.get("ppi_params", ppi_params) != ppi_params:
        raise ConfigError(f"{path}: ppi_params {meta['ppi_params']} differ from its npz's {ppi_params}")


def load_anchors(path: PathLike, num_joints: Optional[int] = None) -> AnchorSet:
    """The anchor set of an npz (or its json sidecar: the npz of the same name is read and checked against it).

    ``num_joints``, when given, is what the model expects; another J in the file is a ConfigError naming it.
    """
    path = Path(path)
    npz_path = _npz_of(path)
    if not npz_path.is_file():
        raise ConfigError(f"anchor file not found: {npz_path}")
    try:
        with np.load(npz_path, allow_pickle=False) as npz:
            poses = np.array(npz["anchor_poses"])
            ppi_params = _scalars(npz, "ppi_params.")
            num_full_body = int(npz["num_full_body"]) if "num_full_body" in npz.files else None
    except (OSError, ValueError, KeyError) as err:
        raise ConfigError(f"{npz_path}: not an anchor-set npz with 'anchor_poses' ({err})") from None
    _check_poses(poses, npz_path, num_joints)
    missing = [key for key in PPI_PARAM_KEYS if key not in ppi_params]
    if missing:
        raise ConfigError(f"{npz_path}: missing ppi_params.{', ppi_params.'.join(missing)}")
    sidecar = npz_path.with_suffix(".json")
    if sidecar.is_file():
        _check_sidecar(sidecar, poses, ppi_params)
    if num_full_body is None:
        num_full_body = count_full_body(poses)
    elif not 0 < num_full_body <= len(poses):
        raise ConfigError(f"{npz_path}: num_full_body {num_full_body} outside 1..{len(poses)}")
    return AnchorSet(poses, num_full_body, ppi_params, str(npz_path))


def save_anchors(anchors: AnchorSet, path: PathLike, provenance: str = "") -> None:
    """Write ``anchors`` as ``path`` (.npz) and its json sidecar, atomically, in the layout ``load_anchors`` reads."""
    npz_path = _npz_of(Path(path))
    poses = np.asarray(anchors.poses, np.float32)
    scalars = {f"ppi_params.{key}": np.asarray(value) for key, value in anchors.ppi_params.items()}

    def write(tmp: str) -> None:
        with open(tmp, "wb") as handle:
            np.savez(handle, anchor_poses=poses, num_full_body=np.asarray(anchors.num_full_body), **scalars)
    atomic_write(npz_path, write)
    atomic_write_json(npz_path.with_suffix(".json"), {
        "source": {"origin": provenance or "built by posekit.models.lcrnet.anchors.build_anchors"},
        "arrays": {"anchor_poses": {"npz_key": "anchor_poses", "dtype": str(poses.dtype),
                                    "shape": list(poses.shape)}},
        "num_full_body": anchors.num_full_body, "ppi_params": anchors.ppi_params}, indent=2)


def kmeans(vectors: np.ndarray, num_clusters: int, seed: int = 0, restarts: int = 5,
           iterations: int = 100) -> np.ndarray:
    """Cluster means (num_clusters, D) of plain Euclidean K-means, k-means++ seeding, best of ``restarts``."""
    if not 0 < num_clusters <= len(vectors):
        raise ConfigError(f"K-means needs 1..{len(vectors)} clusters for {len(vectors)} poses, got {num_clusters}")
    rng = np.random.default_rng(seed)
    best, best_inertia = None, np.inf
    for _ in range(restarts):
        means = _kmeans_plus_plus(vectors, num_clusters, rng)
        for _ in range(iterations):
            labels = _squared_distances(vectors, means).argmin(axis=1)
            updated = np.stack([vectors[labels == c].mean(axis=0) if (labels == c).any() else means[c]
                                for c in range(num_clusters)])
            if np.array_equal(updated, means):
                break
            means = updated
        inertia = _squared_distances(vectors, means).min(axis=1).sum()
        if inertia < best_inertia:
            best, best_inertia = means, inertia
    return best


def _squared_distances(vectors: np.ndarray, means: np.ndarray) -> np.ndarray:
    """(N, K) squared distances, |v|^2 - 2 v.m + |m|^2: memory N x K, not N x K x D (millions of poses)."""
    squared = (vectors ** 2).sum(axis=1)[:, None] - 2 * vectors @ means.T + (means ** 2).sum(axis=1)[None, :]
    return np.maximum(squared, 0)


def _kmeans_plus_plus(vectors: np.ndarray, num_clusters: int, rng: np.random.Generator) -> np.ndarray:
    means = [vectors[rng.integers(len(vectors))]]
    for _ in range(1, num_clusters):
        nearest = _squared_distances(vectors, np.stack(means)).min(axis=1)
        total = nearest.sum()
        # All remaining poses coincide with a mean: any of them is as good as another.
        pick = rng.integers(len(vectors)) if total == 0 else rng.choice(len(vectors), p=nearest / total)
        means.append(vectors[pick])
    return np.stack(means)


def upper_body_twins(full_body: np.ndarray, margin: float = UPPER_BODY_MARGIN) -> np.ndarray:
    """Each full-body anchor seen through a box framing its upper body (lcrnet.md 2.2 step 3): same 3D, 2D
    re-normalised into the upper-body joints' bounds enlarged by ``margin`` of their size per side."""
    num_joints = full_body.shape[1] // COORDINATES
    upper = [j for j in range(num_joints) if j not in LOWER_BODY_JOINTS]
    xs, ys = full_body[:, :num_joints], full_body[:, num_joints:2 * num_joints]
    low = np.stack([xs[:, upper].min(axis=1), ys[:, upper].min(axis=1)], axis=1)
    high = np.stack([xs[:, upper].max(axis=1), ys[:, upper].max(axis=1)], axis=1)
    pad = margin * (high - low)
    boxes = np.concatenate([low - pad, high + pad], axis=1)
    return normalize_poses(torch.from_numpy(full_body), torch.from_numpy(boxes)).numpy()


def build_anchors(poses: np.ndarray, boxes: np.ndarray, num_full_body: int, upper_body: bool = True,
                  seed: int = 0, restarts: int = 5,
                  ppi_params: Optional[Dict[str, Any]] = None) -> AnchorSet:
    """Anchors from training poses (lcrnet.md 2.2): K-means on the 5J vectors normalised in their GT boxes.

    ``poses`` (N, 5J) 2D pixels and 3D LCR metres, ``boxes`` (N, 4) x1, y1, x2, y2; J comes from the poses.
    With ``upper_body`` the result has 2 * ``num_full_body`` classes, the upper-body twins after the full ones.
    """
    poses = np.asarray(poses, np.float64)
    if poses.ndim != 2 or poses.shape[1] % COORDINATES:
        raise ConfigError(f"training poses must be an (N, 5J) array, got shape {poses.shape}")
    normalized = normalize_poses(torch.from_numpy(poses), torch.as_tensor(boxes, dtype=torch.float64)).numpy()
    full = kmeans(normalized, num_full_body, seed=seed, restarts=restarts)
    anchors = np.concatenate([full, upper_body_twins(full)]) if upper_body else full
    return AnchorSet(anchors.astype(np.float32), num_full_body, dict(ppi_params or DEFAULT_PPI_PARAMS))
