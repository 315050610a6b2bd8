"""``Instances``: the people (or objects) of one image as named per-instance fields of equal length.

Field conventions shared by the detector families (two-stage DensePose R-CNN variants, LCR-Net):

* ``gt_boxes``: float32 tensor (N, 4), XYXY in absolute pixels of the image the instances belong to.
* ``gt_classes``: int64 tensor (N,), the annotations' ``category_id`` as given.
* ``gt_keypoints``: float32 tensor (N, K, 3) of x, y, visibility; x, y are continuous pixel coordinates
  (a pixel's centre is at index + 0.5).
* ``gt_masks``: list of N entries, each a COCO polygon list, a COCO RLE dict, or None, kept as given.
* ``gt_densepose``: list of N entries, each a ``DensePosePoints`` or None (no DensePose annotation).

Tensor fields are indexed as tensors; list fields entry by entry.
"""
from dataclasses import dataclass, replace
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from ..utils.errors import DataError

DENSEPOSE_PART_COUNT = 14  # coarse part masks of DensePose-COCO (densepose.md §5.1)
DENSEPOSE_CHART_COUNT = 24  # fine surface charts, numbered 1..24

Index = Union[int, slice, Sequence[int], Sequence[bool], np.ndarray, torch.Tensor]


@dataclass
class DensePosePoints:
    """One person's DensePose-COCO annotation: points in the box frame and optional coarse part masks.

    ``x``, ``y`` (json ``dp_x``, ``dp_y``) are relative to the box's top-left corner in a frame where the box
    spans 256 x 256, so they do not change when the image is resized. ``chart`` (``dp_I``) is the fine chart
    1..24, ``u``, ``v`` (``dp_U``, ``dp_V``) its surface coordinates in [0, 1]. ``part_masks`` (``dp_masks``)
    holds 14 entries, each ``[]`` (part absent) or a COCO RLE on a 256 x 256 canvas spanning the box.
    """

    x: torch.Tensor
    y: torch.Tensor
    chart: torch.Tensor
    u: torch.Tensor
    v: torch.Tensor
    part_masks: Optional[List[Any]] = None

    def __post_init__(self) -> None:
        lengths = {len(self.x), len(self.y), len(self.chart), len(self.u), len(self.v)}
        if len(lengths) != 1:
            raise DataError(f"DensePose points: x, y, chart, u, v must have one length, got {sorted(lengths)}")
        if self.part_masks is not None and len(self.part_masks) != DENSEPOSE_PART_COUNT:
            raise DataError(f"DensePose points: expected {DENSEPOSE_PART_COUNT} part masks, "
                            f"got {len(self.part_masks)}")

    def __len__(self) -> int:
        return len(self.x)

    @classmethod
    def from_lists(cls, x: Sequence[float], y: Sequence[float], chart: Sequence[float], u: Sequence[float],
                   v: Sequence[float], part_masks: Optional[List[Any]] = None) -> "DensePosePoints":
        """Points from json-style lists (float32 coordinates as the official loaders keep them; int64 charts)."""
        return cls(torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y, dtype=torch.float32),
                   torch.as_tensor(chart, dtype=torch.float32).round().long(),
                   torch.as_tensor(u, dtype=torch.float32), torch.as_tensor(v, dtype=torch.float32),
                   part_masks)

    def to(self, device: Union[str, torch.device]) -> "DensePosePoints":
        """A copy whose point tensors are on ``device`` (masks stay RLE dicts)."""
        return replace(self, x=self.x.to(device), y=self.y.to(device), chart=self.chart.to(device),
                       u=self.u.to(device), v=self.v.to(device))


def _index_array(index: Index, length: int) -> Union[slice, np.ndarray]:
    """A slice or an int64 position array for ``index``; ints keep the instance dimension (length 1)."""
    if isinstance(index, slice):
        return index
    if isinstance(index, (int, np.integer)):
        if not -length <= index < length:
            raise IndexError(f"instance index {index} out of range for {length} instances")
        return np.array([index % length], np.int64)
    array = index.cpu().numpy() if isinstance(index, torch.Tensor) else np.asarray(index)
    if array.dtype == bool:
        if array.shape != (length,):
            raise IndexError(f"boolean mask of shape {array.shape} for {length} instances")
        return np.flatnonzero(array)
    if array.size == 0:
        return np.zeros(0, np.int64)
    if array.ndim != 1 or not np.issubdtype(array.dtype, np.integer):
        raise IndexError(f"instances take an int, a slice, a boolean mask or a 1-D index array, got {array.dtype}")
    return array.astype(np.int64)


def _select(value: Any, positions: Union[slice, np.ndarray]) -> Any:
    if isinstance(value, torch.Tensor):
        return value[positions] if isinstance(positions, slice) else \
            value[torch.from_numpy(positions).to(value.device)]
    if isinstance(value, np.ndarray):
        return value[positions]
    return list(value[positions]) if isinstance(positions, slice) else [value[i] for i in positions]


def _concatenate(values: List[Any]) -> Any:
    if isinstance(values[0], torch.Tensor):
        return torch.cat(values)
    if isinstance(values[0], np.ndarray):
        return np.concatenate(values)
    return [entry for value in values for entry in value]


def _moved(value: Any, device: Union[str, torch.device]) -> Any:
    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, list):
        return [entry.to(device) if isinstance(entry, DensePosePoints) else entry for entry in value]
    return value


class Instances:
    """Per-image instances: ``image_size`` (height, width) and named fields holding one entry per instance.

    Fields are read and written as attributes (``instances.gt_boxes``) or with ``get``/``set``/``has``.
    Indexing with an int, a slice, a boolean mask or an index array selects instances in every field.
    """

    def __init__(self, image_size: Tuple[int, int], **fields: Any) -> None:
        self._image_size = (int(image_size[0]), int(image_size[1]))
        self._fields: Dict[str, Any] = {}
        for name, value in fields.items():
            self.set(name, value)

    @property
    def image_size(self) -> Tuple[int, int]:
        """(height, width) of the image the coordinates refer to."""
        return self._image_size

    def __setattr__(self, name: str, value: Any) -> None:
        if name.startswith("_"):
            super().__setattr__(name, value)
        else:
            self.set(name, value)

    def __getattr__(self, name: str) -> Any:
        # Looked up in __dict__ so that unpickling (before _fields exists) gets an AttributeError.
        fields = self.__dict__.get("_fields", {})
        if name not in fields:
            raise AttributeError(f"Instances have no field '{name}'; fields: {', '.join(fields) or 'none'}")
        return fields[name]

    def set(self, name: str, value: Any) -> None:
        """Add or replace field ``name``; its length must equal that of the other fields."""
        others = [other for other in self._fields if other != name]
        if others and len(value) != len(self):
            raise DataError(f"Instances field '{name}' has {len(value)} entries, expected {len(self)} "
                            f"(the length of '{others[0]}')")
        self._fields[name] = value

    def get(self, name: str) -> Any:
        """The value of field ``name``."""
        return getattr(self, name)

    def has(self, name: str) -> bool:
        """Whether field ``name`` is set."""
        return name in self._fields

    def remove(self, name: str) -> None:
        """Delete field ``name``."""
        if name not in self._fields:
            raise AttributeError(f"Instances have no field '{name}'")
        del self._fields[name]

    def fields(self) -> Dict[str, Any]:
        """Name -> value of every field, in the order they were set."""
        return dict(self._fields)

    def __len__(self) -> int:
        for value in self._fields.values():
            return len(value)
        return 0

    def __getitem__(self, index: Index) -> "Instances":
        positions = _index_array(index, len(self))
        return Instances(self._image_size, **{name: _select(value, positions)
                                              for name, value in self._fields.items()})

    def to(self, device: Union[str, torch.device]) -> "Instances":
        """A copy whose tensor fields (and DensePose point tensors) are on ``device``."""
        return Instances(self._image_size, **{name: _moved(value, device) for name, value in self._fields.items()})

    @staticmethod
    def cat(instances_list: Sequence["Instances"]) -> "Instances":
        """Concatenate instances of one image size that have the same fields."""
        if not instances_list:
            raise ValueError("Instances.cat needs at least one Instances")
        first = instances_list[0]
        for other in instances_list[1:]:
            if other.image_size != first.image_size:
                raise DataError(f"Instances.cat: image sizes differ ({first.image_size} and {other.image_size})")
            if set(other.fields()) != set(first.fields()):
                raise DataError(f"Instances.cat: fields differ ({sorted(first.fields())} and "
                                f"{sorted(other.fields())})")
        return Instances(first.image_size, **{name: _concatenate([item.get(name) for item in instances_list])
                                              for name in first.fields()})

    def __repr__(self) -> str:
        return (f"Instances(num_instances={len(self)}, image_height={self._image_size[0]}, "
                f"image_width={self._image_size[1]}, fields=[{', '.join(self._fields)}])")
