"""Batching for the detector families, whose images differ in size and hold varying numbers of people.

The data loader's collate (``collate_instances_batch``) keeps items as a list; the model normalises each
image and then pads the batch with ``pad_images``, so that padding stays zero after normalisation (the
order detectron2-style models use).
"""
from typing import Any, Dict, List, Sequence, Tuple

import torch

from ..utils.errors import ConfigError, DataError


def _padded_side(side: int, size_divisibility: int) -> int:
    return -(-side // size_divisibility) * size_divisibility if size_divisibility > 0 else side


def pad_images(images: Sequence[torch.Tensor], size_divisibility: int,
               pad_value: float = 0.0) -> Tuple[torch.Tensor, List[Tuple[int, int]]]:
    """Images C x H x W, top-left aligned in one N x C x Hp x Wp tensor, and each image's (h, w).

    Hp, Wp are the largest height and width rounded up to a multiple of ``size_divisibility`` (as given when
    it is 0); the rest is ``pad_value``.
    """
    if size_divisibility < 0:
        raise ConfigError(f"size_divisibility must be 0 (no rounding) or positive, got {size_divisibility}")
    if not images:
        raise DataError("pad_images: no images to batch")
    for index, image in enumerate(images):
        if image.dim() != 3 or image.shape[0] != images[0].shape[0] or image.dtype != images[0].dtype:
            raise DataError(f"pad_images: image {index} is {tuple(image.shape)} {image.dtype}, expected "
                            f"C x H x W with C = {images[0].shape[0]} and dtype {images[0].dtype} like image 0")
    sizes = [(int(image.shape[1]), int(image.shape[2])) for image in images]
    height = _padded_side(max(h for h, _ in sizes), size_divisibility)
    width = _padded_side(max(w for _, w in sizes), size_divisibility)
    batch = images[0].new_full((len(images), images[0].shape[0], height, width), pad_value)
    for slot, image, (h, w) in zip(batch, images, sizes):
        slot[:, :h, :w].copy_(image)
    return batch, sizes


def collate_instances_batch(items: Sequence[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """The items as a list, unchanged, after checking each: a dict with "image" (C x H x W tensor) and,
    for training, "instances" made for that H x W."""
    for index, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("image"), torch.Tensor) or item["image"].dim() != 3:
            raise DataError(f"batch item {index}: expected a dict with an 'image' C x H x W tensor")
        instances = item.get("instances")
        if instances is not None and tuple(item["image"].shape[1:]) != tuple(instances.image_size):
            raise DataError(f"batch item {index}: image is {item['image'].shape[1]}x{item['image'].shape[2]} but "
                            f"its instances are for {instances.image_size[0]}x{instances.image_size[1]}")
    return list(items)
