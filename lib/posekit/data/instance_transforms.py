"""Deterministic transforms that move an image (H, W, 3 uint8) and its ``Instances`` together.

Coordinates follow the detector families' (detectron2's) continuous convention: pixel column i spans
[i, i + 1), so a horizontal flip maps x to W - x and a resize scales x by new_w / w. DEKR keeps its own
transforms (flip x -> W - 1 - x) in ``posekit.data.transforms``; nothing here changes them.

DensePose points are box-relative (the box spans 256 x 256) and so only change under a flip
(densepose.md §5.3); masks given as polygons are moved exactly, masks given as RLE are decoded, moved
pixel-wise (nearest-neighbour when resized) and encoded again.
"""
from dataclasses import dataclass
from typing import Any, Callable, List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
import pycocotools.mask as mask_utils
import torch

from ..structures import DensePosePoints, Instances
from ..structures.instances import DENSEPOSE_CHART_COUNT, DENSEPOSE_PART_COUNT
from ..utils.errors import ConfigError, DataError

# densepose.md §5.3: chart I -> its mirror chart (index 0 = background), coarse part S -> its mirror part.
CHART_SYMMETRY = (0, 1, 2, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15, 18, 17, 20, 19, 22, 21, 24, 23)
PART_SYMMETRY = (0, 1, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10, 13, 12, 14)
DENSEPOSE_FRAME = 256  # the box spans 256 x 256 in dp_x, dp_y and in the dp_masks canvas
UV_TABLE_SIZE = 256

Generator = Union[np.random.Generator, np.random.RandomState]


@dataclass(frozen=True, eq=False)
class DensePoseFlip:
    """What a horizontal flip needs for DensePose: per-chart U, V symmetry tables and the label maps.

    ``u_transforms[c - 1][v_hat, u_hat]`` is the flipped U of a point on chart c with u_hat = floor(255 U),
    v_hat = floor(255 V) (likewise V); the official tables are ``UV_symmetry_transforms.mat`` (``from_mat``).
    """

    u_transforms: np.ndarray  # (24, 256, 256)
    v_transforms: np.ndarray  # (24, 256, 256)
    chart_symmetry: Tuple[int, ...] = CHART_SYMMETRY
    part_symmetry: Tuple[int, ...] = PART_SYMMETRY

    def __post_init__(self) -> None:
        expected = (DENSEPOSE_CHART_COUNT, UV_TABLE_SIZE, UV_TABLE_SIZE)
        for name in ("u_transforms", "v_transforms"):
            table = np.asarray(getattr(self, name), np.float32)
            if table.shape != expected:
                raise ConfigError(f"DensePoseFlip.{name}: expected shape {expected}, got {table.shape}")
            object.__setattr__(self, name, table)  # frozen: set once, as float32 like the points
        if sorted(self.chart_symmetry) != list(range(DENSEPOSE_CHART_COUNT + 1)):
            raise ConfigError(f"DensePoseFlip.chart_symmetry must permute 0..{DENSEPOSE_CHART_COUNT}")
        if sorted(self.part_symmetry) != list(range(DENSEPOSE_PART_COUNT + 1)):
            raise ConfigError(f"DensePoseFlip.part_symmetry must permute 0..{DENSEPOSE_PART_COUNT}")

    @classmethod
    def from_mat(cls, path: str) -> "DensePoseFlip":
        """Tables from the official ``UV_symmetry_transforms.mat`` (keys U_transforms, V_transforms: 1 x 24 cells)."""
        from scipy.io import loadmat

        try:
            data = loadmat(path)
        except (OSError, ValueError) as err:
            raise DataError(f"{path}: cannot read the UV symmetry tables ({err})") from err
        tables = []
        for key in ("U_transforms", "V_transforms"):
            if key not in data:
                raise DataError(f"{path}: missing key '{key}' (a 1 x 24 cell of 256 x 256 tables)")
            cells = np.asarray(data[key]).reshape(-1)
            tables.append(np.stack([np.asarray(cell, np.float32) for cell in cells]))
        try:
            return cls(*tables)
        except ConfigError as err:
            raise DataError(f"{path}: {err}") from err


def resize_shortest_edge_size(height: int, width: int, short: int, max_size: int) -> Tuple[int, int]:
    """(new_height, new_width) of detectron2's ResizeShortestEdge: short side -> ``short``, long side <= max_size.

    densepose.md §1.4 gives the sizes (short side from a list, long side <= 1333) but not the rounding; this is
    detectron2's rule: scale = short / min(h, w); when the long side would exceed max_size both sides are
    scaled down to make it max_size; each side is then rounded as int(x + 0.5).
    """
    scale = short / min(height, width)
    new_height, new_width = (short, scale * width) if height < width else (scale * height, short)
    if max(new_height, new_width) > max_size:
        shrink = max_size / max(new_height, new_width)
        new_height, new_width = new_height * shrink, new_width * shrink
    return int(new_height + 0.5), int(new_width + 0.5)


def _check_image(image: np.ndarray, instances: Instances) -> Tuple[int, int]:
    if tuple(image.shape[:2]) != instances.image_size:
        raise DataError(f"image is {image.shape[0]}x{image.shape[1]} but its instances are for "
                        f"{instances.image_size[0]}x{instances.image_size[1]}")
    return instances.image_size


def _transformed(instances: Instances, image_size: Tuple[int, int], **functions: Callable[[Any], Any]) -> Instances:
    """A copy at ``image_size`` whose fields named in ``functions`` went through them; other fields unchanged."""
    return Instances(image_size, **{name: functions[name](value) if name in functions else value
                                    for name, value in instances.fields().items()})


def _decode(rle: dict) -> np.ndarray:
    if isinstance(rle["counts"], list):  # uncompressed RLE
        rle = mask_utils.frPyObjects(rle, *rle["size"])
    return mask_utils.decode(rle)


def _encode(mask: np.ndarray) -> dict:
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(side) for side in rle["size"]], "counts": rle["counts"].decode("ascii")}


def _map_masks(masks: List[Any], move_points: Callable[[np.ndarray, np.ndarray], Tuple[np.ndarray, np.ndarray]],
               move_pixels: Callable[[np.ndarray], np.ndarray]) -> List[Any]:
    """Move each mask entry: polygons through ``move_points(x, y)``, RLE through ``move_pixels``, None kept."""
    def move(entry: Any) -> Any:
        if entry is None:
            return None
        if isinstance(entry, dict):
            return _encode(move_pixels(_decode(entry)))
        moved = []
        for polygon in entry:
            xy = np.asarray(polygon, np.float64).reshape(-1, 2)
            x, y = move_points(xy[:, 0], xy[:, 1])
            moved.append(np.stack([x, y], axis=1).reshape(-1).tolist())
        return moved
    return [move(entry) for entry in masks]


def resize(image: np.ndarray, instances: Instances, new_height: int, new_width: int) -> Tuple[np.ndarray, Instances]:
    """Resize the image (bilinear) to new_height x new_width; boxes, keypoints and masks scale with it."""
    _check_image(image, instances)
    resized = cv2.resize(image, (new_width, new_height), interpolation=cv2.INTER_LINEAR)
    return resized, resize_instances(instances, new_height, new_width)


def resize_instances(instances: Instances, new_height: int, new_width: int) -> Instances:
    """The instances of an image resized to new_height x new_width (for callers with their own image resizer)."""
    height, width = instances.image_size
    scale_x, scale_y = new_width / width, new_height / height

    def keypoints(values: torch.Tensor) -> torch.Tensor:
        return torch.cat([values[..., :2] * torch.tensor([scale_x, scale_y]), values[..., 2:]], dim=-1)

    return _transformed(
        instances, (new_height, new_width),
        gt_boxes=lambda boxes: boxes * torch.tensor([scale_x, scale_y, scale_x, scale_y]),
        gt_keypoints=keypoints,
        # NEAREST_EXACT samples at pixel centres, matching the continuous coordinates (plain NEAREST does not).
        gt_masks=lambda masks: _map_masks(
            masks, lambda x, y: (x * scale_x, y * scale_y),
            lambda mask: cv2.resize(mask, (new_width, new_height), interpolation=cv2.INTER_NEAREST_EXACT)))


def _flip_rle(rle: Any) -> Any:
    return _encode(_decode(rle)[:, ::-1]) if isinstance(rle, dict) else rle


def _flip_densepose(points: Optional[DensePosePoints], flip: DensePoseFlip) -> Optional[DensePosePoints]:
    """Mirror one person's DensePose annotation inside its (already mirrored) box, densepose.md §5.3."""
    if points is None:
        return None
    # The tables are read with the original chart, at [floor(255 V), floor(255 U)] computed in the points'
    # float32 as the official code does.
    table_position = ((points.chart - 1).cpu().numpy(),
                      torch.floor(points.v * 255).long().clamp(0, UV_TABLE_SIZE - 1).cpu().numpy(),
                      torch.floor(points.u * 255).long().clamp(0, UV_TABLE_SIZE - 1).cpu().numpy())
    part_masks = None
    if points.part_masks is not None:
        part_masks = [[] for _ in range(DENSEPOSE_PART_COUNT)]
        for part, mask in enumerate(points.part_masks, start=1):
            part_masks[flip.part_symmetry[part] - 1] = _flip_rle(mask)
    return DensePosePoints(
        x=DENSEPOSE_FRAME - points.x, y=points.y.clone(),
        chart=torch.as_tensor(flip.chart_symmetry)[points.chart.cpu()].to(points.chart.device),
        u=torch.as_tensor(flip.u_transforms[table_position], dtype=points.u.dtype, device=points.u.device),
        v=torch.as_tensor(flip.v_transforms[table_position], dtype=points.v.dtype, device=points.v.device),
        part_masks=part_masks)


def _flip_keypoints(keypoints: torch.Tensor, width: int, flip_index: Optional[Sequence[int]]) -> torch.Tensor:
    if flip_index is None or len(flip_index) != keypoints.shape[1]:
        raise ConfigError(f"flipping {keypoints.shape[1]} keypoints needs a keypoint flip index of that length, "
                          f"got {None if flip_index is None else len(flip_index)}")
    flipped = keypoints[:, list(flip_index)].clone()
    flipped[..., 0] = width - flipped[..., 0]
    return flipped


def _flip_densepose_list(entries: List[Optional[DensePosePoints]],
                         flip: Optional[DensePoseFlip]) -> List[Optional[DensePosePoints]]:
    if flip is None and any(entry is not None for entry in entries):
        raise ConfigError("flipping DensePose annotations needs the UV symmetry tables (a DensePoseFlip, "
                          "e.g. DensePoseFlip.from_mat('UV_symmetry_transforms.mat'))")
    return [_flip_densepose(entry, flip) for entry in entries]


def horizontal_flip(image: np.ndarray, instances: Instances, keypoint_flip_index: Optional[Sequence[int]],
                    densepose_flip: Optional[DensePoseFlip] = None) -> Tuple[np.ndarray, Instances]:
    """Mirror the image left-right: x -> W - x for boxes, keypoints and polygons; keypoint rows swap sides
    (row k takes row keypoint_flip_index[k]); DensePose as densepose.md §5.3."""
    _, width = _check_image(image, instances)
    return np.ascontiguousarray(image[:, ::-1]), _transformed(
        instances, instances.image_size,
        gt_boxes=lambda boxes: torch.stack([width - boxes[:, 2], boxes[:, 1], width - boxes[:, 0], boxes[:, 3]], 1),
        gt_keypoints=lambda keypoints: _flip_keypoints(keypoints, width, keypoint_flip_index),
        gt_masks=lambda masks: _map_masks(masks, lambda x, y: (width - x, y), lambda mask: mask[:, ::-1]),
        gt_densepose=lambda entries: _flip_densepose_list(entries, densepose_flip))


def random_flip(image: np.ndarray, instances: Instances, prob: float, rng: Generator,
                keypoint_flip_index: Optional[Sequence[int]] = None,
                densepose_flip: Optional[DensePoseFlip] = None) -> Tuple[np.ndarray, Instances]:
    """``horizontal_flip`` when one draw of ``rng.random()`` is below ``prob``; otherwise the inputs unchanged."""
    if rng.random() < prob:
        return horizontal_flip(image, instances, keypoint_flip_index, densepose_flip)
    return image, instances


def crop(image: np.ndarray, instances: Instances, x0: int, y0: int, width: int,
         height: int) -> Tuple[np.ndarray, Instances]:
    """Cut the window [x0, x0 + width) x [y0, y0 + height) out of the image; it must lie inside the image.

    Boxes are shifted and clipped to the window (instances are all kept: callers drop empty boxes by indexing).
    Keypoints are shifted; those outside [0, width] x [0, height] keep their x, y but get visibility 0, as
    detectron2 marks them. Polygons are shifted, RLE masks cut. DensePose points are box-relative, so they stay
    for instances whose box lies inside the window and become None where the box was clipped (their frame
    would change).
    """
    image_height, image_width = _check_image(image, instances)
    if not (0 <= x0 and 0 <= y0 and width > 0 and height > 0 and x0 + width <= image_width
            and y0 + height <= image_height):
        raise DataError(f"crop window x0={x0}, y0={y0}, width={width}, height={height} is not inside the "
                        f"{image_height}x{image_width} image")
    shift = torch.tensor([x0, y0, x0, y0], dtype=torch.float32)
    limits = torch.tensor([width, height, width, height], dtype=torch.float32)
    inside_window = None
    if instances.has("gt_boxes"):
        shifted = instances.gt_boxes - shift
        clipped = shifted.clamp(min=0).minimum(limits)
        inside_window = (shifted == clipped).all(dim=1)

    def keypoints(values: torch.Tensor) -> torch.Tensor:
        moved = values.clone()
        moved[..., :2] -= shift[:2]
        inside = (moved[..., :2] >= 0).all(-1) & (moved[..., :2] <= limits[:2]).all(-1)
        moved[..., 2] = torch.where(inside, moved[..., 2], torch.zeros_like(moved[..., 2]))
        return moved

    def densepose(entries: List[Optional[DensePosePoints]]) -> List[Optional[DensePosePoints]]:
        if inside_window is None:
            return entries
        return [entry if keep else None for entry, keep in zip(entries, inside_window.tolist())]

    return image[y0:y0 + height, x0:x0 + width].copy(), _transformed(
        instances, (height, width),
        gt_boxes=lambda _: clipped,
        gt_keypoints=keypoints,
        gt_masks=lambda masks: _map_masks(masks, lambda x, y: (x - x0, y - y0),
                                          lambda mask: mask[y0:y0 + height, x0:x0 + width]),
        gt_densepose=densepose)
