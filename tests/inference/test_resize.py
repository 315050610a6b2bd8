"""Input sizing (dekr.md 7.1) and the inverse mapping back to image pixels (7.6)."""
import numpy as np
import pytest
import torch

from posekit.inference.dekr.resize import (get_affine_transform, get_final_preds, get_multi_scale_size,
                                      resize_align_multi_scale)


@pytest.mark.parametrize("scale, size", [(1.0, (832, 512)), (2.0, (1664, 1024)), (0.5, (416, 256))])
def test_landscape_sizes_are_64_aligned(scale, size):
    got, center, _ = get_multi_scale_size(425, 640, 512, scale)
    assert got == size
    assert tuple(center) == (320, 213)  # int(212.5 + 0.5)


def test_portrait_and_output_size():
    (w, h), _, _ = get_multi_scale_size(640, 425, 512, 1.0)
    assert (w, h) == (512, 832)
    (w, h), _, _ = get_multi_scale_size(425, 640, 512, 1.0)
    assert (w // 4, h // 4) == (208, 128)


def test_affine_is_isotropic_about_the_centre():
    size, center, scale_pair = get_multi_scale_size(425, 640, 512, 1.0)
    matrix = get_affine_transform(center, scale_pair, size)
    factor = 512 / 425  # short side 425 -> 512
    expected = np.array([[factor, 0, 416 - factor * 320], [0, factor, 256 - factor * 213]])
    np.testing.assert_allclose(matrix, expected, rtol=1e-5, atol=1e-3)


def test_resize_then_map_back_round_trip():
    image = np.zeros((425, 640, 3), dtype=np.uint8)
    resized, center, scale_pair = resize_align_multi_scale(image, 512, 1.0)
    assert resized.shape == (512, 832, 3)
    points = np.array([[[0.0, 0.0, 0.3], [639.0, 424.0, 0.7], [100.5, 200.25, 1.0]]])
    forward = get_affine_transform(center, scale_pair, (832, 512))
    moved = points.copy()
    moved[..., :2] = points[..., :2] @ forward[:, :2].T + forward[:, 2]
    back = get_final_preds(torch.tensor(moved, dtype=torch.float32), center, scale_pair, (832, 512))
    np.testing.assert_allclose(back.numpy(), points, atol=2e-3)


def test_warp_puts_the_centre_pixel_in_the_middle():
    image = np.zeros((425, 640, 3), dtype=np.uint8)
    image[213, 320] = 255
    resized, _, _ = resize_align_multi_scale(image, 512, 1.0)
    row, col = np.unravel_index(resized[..., 0].argmax(), resized.shape[:2])
    assert (row, col) == (256, 416)
