"""Detector-style batching: padding differently sized images, and the list collate."""
import pytest
import torch

from posekit.data.collate import collate_instances_batch, pad_images
from posekit.structures import Instances
from posekit.utils.errors import ConfigError, DataError


def three_images():
    """3 x 30 x 50 filled with 1, 3 x 65 x 20 with 2, 3 x 7 x 96 with 3."""
    return [torch.full((3, h, w), float(value)) for value, (h, w) in enumerate([(30, 50), (65, 20), (7, 96)], 1)]


def test_padding_to_a_multiple_of_32():
    batch, sizes = pad_images(three_images(), 32, pad_value=-1.5)
    # Largest height 65 -> 96, largest width 96 stays 96.
    assert batch.shape == (3, 3, 96, 96) and batch.dtype == torch.float32
    assert sizes == [(30, 50), (65, 20), (7, 96)]
    assert (batch[0, :, :30, :50] == 1).all()
    assert (batch[0, :, 30:] == -1.5).all() and (batch[0, :, :, 50:] == -1.5).all()
    assert (batch[1, :, :65, :20] == 2).all() and (batch[1, :, 65:] == -1.5).all()
    assert (batch[2, :, :7] == 3).all()
    # 9216 pixels per image minus 1500, 1300 and 672 image pixels, times 3 channels.
    assert int((batch == -1.5).sum()) == 3 * (7716 + 7916 + 8544)


def test_no_rounding_exact_multiples_and_integer_images():
    batch, _ = pad_images(three_images(), 0)
    assert batch.shape == (3, 3, 65, 96) and batch[1, 0, 64, 19] == 2 and batch[0, 0, 64, 0] == 0
    exact, sizes = pad_images([torch.ones(3, 64, 32, dtype=torch.uint8), torch.ones(3, 32, 32, dtype=torch.uint8)], 32)
    assert exact.shape == (2, 3, 64, 32) and exact.dtype == torch.uint8 and sizes == [(64, 32), (32, 32)]
    assert int(exact[1].sum()) == 3 * 32 * 32


def test_padding_errors():
    with pytest.raises(ConfigError, match="size_divisibility"):
        pad_images(three_images(), -32)
    with pytest.raises(DataError, match="no images"):
        pad_images([], 32)
    with pytest.raises(DataError, match=r"image 1 is \(1, 4, 4\)"):
        pad_images([torch.zeros(3, 4, 4), torch.zeros(1, 4, 4)], 32)


def test_collate_keeps_items_as_a_list_and_checks_sizes():
    items = [{"image": torch.zeros(3, 4, 6), "instances": Instances((4, 6), gt_classes=torch.tensor([1]))},
             {"image": torch.zeros(3, 5, 5)}]
    batch = collate_instances_batch(items)
    assert isinstance(batch, list) and len(batch) == 2 and batch[0] is items[0] and batch[1] is items[1]
    with pytest.raises(DataError, match="batch item 0: image is 4x6 but its instances are for 6x4"):
        collate_instances_batch([{"image": torch.zeros(3, 4, 6), "instances": Instances((6, 4))}])
    with pytest.raises(DataError, match="batch item 0: expected a dict"):
        collate_instances_batch([torch.zeros(3, 4, 6)])
