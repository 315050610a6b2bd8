"""Augmentation: the affine formula, the official draw order, and image/joint agreement through affine + flip."""
import math
import random

import cv2
import numpy as np
import pytest
import torch

from posekit.data.transforms import (AffineDraw, RandomAffine, RandomHorizontalFlip, affine_matrix, draw_affine,
                                     to_chw_tensor, transform_points)


def test_affine_maps_the_crop_centre_and_edge():
    draw = AffineDraw(center=(300.0, 200.0), scale=2.0, rotation=0.0)  # crop side 400 px
    points = transform_points(np.array([[300.0, 200.0], [500.0, 200.0], [300.0, 0.0]]), affine_matrix(draw, 128))
    assert np.allclose(points, [[64, 64], [128, 64], [64, 0]])


def test_positive_rotation_turns_a_point_right_of_centre_upwards():
    # Official: rotate by t = -rot with [[cos t, -sin t], [sin t, cos t]]; rot = 90 sends (+d, 0) to (0, -d).
    draw = AffineDraw(center=(100.0, 100.0), scale=1.0, rotation=90.0)
    point = transform_points(np.array([[150.0, 100.0]]), affine_matrix(draw, 200))
    assert np.allclose(point, [[100, 50]], atol=1e-9)


def test_draws_follow_the_official_order():
    rng, replay = np.random.RandomState(7), np.random.RandomState(7)
    draw = draw_affine(300, 500, 0.75, 1.5, 30, 40, "short", rng)
    scale = 1.5 * (replay.random_sample() * 0.75 + 0.75)
    rotation = (replay.random_sample() * 2 - 1) * 30
    bound = math.trunc(40 * scale)
    dx, dy = replay.randint(-bound, bound), replay.randint(-bound, bound)
    assert draw.scale == pytest.approx(scale) and draw.rotation == pytest.approx(rotation)
    assert draw.center == pytest.approx((250 + dx, 150 + dy))


def _dot_image(height, width, x, y):
    image = np.zeros((height, width, 3), np.uint8)
    cv2.circle(image, (x, y), 2, (255, 255, 255), -1)
    return image


def _centroid(channel):
    ys, xs = np.mgrid[:channel.shape[0], :channel.shape[1]]
    weights = channel.astype(np.float64)
    return (xs * weights).sum() / weights.sum(), (ys * weights).sum() / weights.sum()


def test_image_and_joints_move_together_through_affine_and_flip():
    input_size, output_size, stride = 128, 32, 4
    affine = RandomAffine(input_size, output_size, max_rotation=30, min_scale=0.75, max_scale=1.5,
                          scale_type="short", max_translate=40)
    flip = RandomHorizontalFlip([1, 0, 2], output_size, prob=0.5)
    flipped_runs = 0
    for seed in range(8):
        # Joint 0 carries the dot; joint 1 is elsewhere, so a flip must swap their rows.
        image = _dot_image(150, 200, 90, 70)
        joints = np.array([[[90.0, 70.0, 2], [30.0, 20.0, 2], [60.0, 45.0, 1]]])
        mask = np.ones((150, 200), bool)
        image, mask, joints, _ = affine(image, mask, joints, np.array([1.0]), np.random.RandomState(seed))
        python_rng = random.Random(seed)
        flipped = random.Random(seed).random() < 0.5
        image, mask, joints = flip(image, mask, joints, python_rng)
        dot = joints[0, 1 if flipped else 0]
        # Output pixel x sits at input pixel 4x; after the official flip the image is 3 input px (0.75 output
        # px) further right than the joint says.
        expected = (dot[0] * stride + (3 if flipped else 0), dot[1] * stride)
        assert np.allclose(_centroid(image[..., 0]), expected, atol=1.0)
        brightest = np.unravel_index(np.argmax(cv2.GaussianBlur(image[..., 0], (5, 5), 0)), image.shape[:2])
        assert abs(brightest[1] - expected[0]) <= 1.5 and abs(brightest[0] - expected[1]) <= 1.5
        flipped_runs += flipped
    assert 0 < flipped_runs < 8


def test_flip_reorders_rows_and_mirrors_x():
    flip = RandomHorizontalFlip([1, 0, 2], output_size=32, prob=1.0)
    joints = np.array([[[3.0, 4.0, 2], [10.0, 5.0, 1], [6.0, 7.0, 1]]])
    image = np.arange(2 * 4 * 3, dtype=np.uint8).reshape(2, 4, 3)
    mask = np.array([[True, False, False, False]])
    out_image, out_mask, out_joints = flip(image, mask, joints, random.Random(0))
    assert out_joints.tolist() == [[[21.0, 5.0, 1], [28.0, 4.0, 2], [25.0, 7.0, 1]]]
    assert (out_image == image[:, ::-1]).all() and out_mask.tolist() == [[False, False, False, True]]


def test_images_become_channel_first_uint8_tensors():
    image = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    tensor = to_chw_tensor(image)
    assert tensor.shape == (3, 2, 3) and tensor.dtype == torch.uint8
    assert tensor[2, 1, 0].item() == image[1, 0, 2] == 11
