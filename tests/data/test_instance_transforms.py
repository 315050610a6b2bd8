"""Image + Instances transforms on a 4 x 6 image; every expected number is worked out by hand in the comments."""
import numpy as np
import pycocotools.mask as mask_utils
import pytest
import torch
from scipy.io import savemat

from posekit.data.instance_transforms import (DensePoseFlip, crop, horizontal_flip, random_flip, resize,
                                              resize_shortest_edge_size)
from posekit.structures import DensePosePoints, Instances
from posekit.utils.errors import ConfigError, DataError

HEIGHT, WIDTH = 4, 6
FLIP_INDEX = [1, 0, 2]  # joints: left, right, centre


def rle(mask):
    encoded = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": encoded["size"], "counts": encoded["counts"].decode()}


def ones_at(shape, rows, cols):
    mask = np.zeros(shape, np.uint8)
    mask[rows, cols] = 1
    return mask


def image():
    """Pixel (y, x) holds 10 y + x in every channel."""
    values = (10 * np.arange(HEIGHT)[:, None] + np.arange(WIDTH)[None, :]).astype(np.uint8)
    return np.repeat(values[:, :, None], 3, axis=2)


def canvas_masks():
    """DensePose part masks: torso (part 1) at rows 10..19, cols 30..39; right hand (part 2) at rows 0..4, cols 0..9."""
    return [rle(ones_at((256, 256), slice(10, 20), slice(30, 40))),
            rle(ones_at((256, 256), slice(0, 5), slice(0, 10)))] + [[]] * 12


def people():
    """Person 0: box (1, 0.5, 3, 2.5), keypoints, polygon mask, DensePose. Person 1: box (2, 1.5, 4, 2.5),
    RLE mask on pixel (row 1, col 1), DensePose without masks."""
    keypoints = torch.tensor([[[1.5, 1.5, 2.0], [4.5, 2.5, 1.0], [3.0, 3.5, 2.0]],
                              [[5.0, 3.0, 2.0], [0.0, 0.0, 0.0], [2.0, 2.0, 1.0]]])
    dense0 = DensePosePoints.from_lists([10.0, 128.5, 250.0], [5.0, 60.0, 255.0], [3, 24, 1], [0.5, 1.0, 0.1],
                                        [0.25, 0.0, 0.9], canvas_masks())
    dense1 = DensePosePoints.from_lists([1.0], [2.0], [2], [0.0], [0.0])
    return Instances((HEIGHT, WIDTH), gt_boxes=torch.tensor([[1.0, 0.5, 3.0, 2.5], [2.0, 1.5, 4.0, 2.5]]),
                     gt_classes=torch.tensor([1, 1]), gt_keypoints=keypoints,
                     gt_masks=[[[1.0, 0.0, 3.0, 0.0, 3.0, 2.0]], rle(ones_at((HEIGHT, WIDTH), 1, 1))],
                     gt_densepose=[dense0, dense1])


def stand_in_flip():
    """Stand-in UV tables: U table of chart c at [r, k] is 100000 (c - 1) + 1000 r + k; V is its negative."""
    chart, row, col = np.meshgrid(np.arange(24), np.arange(256), np.arange(256), indexing="ij")
    table = (100000 * chart + 1000 * row + col).astype(np.float32)
    return DensePoseFlip(table, -table)


def test_horizontal_flip_boxes_keypoints_masks():
    flipped_image, flipped = horizontal_flip(image(), people(), FLIP_INDEX, stand_in_flip())
    assert flipped_image[0, 0, 0] == 5 and flipped_image[3, 5, 1] == 30  # old (0, 5) and (3, 0)
    # x1' = 6 - x2, x2' = 6 - x1: (1, 0.5, 3, 2.5) -> (3, 0.5, 5, 2.5); (2, 1.5, 4, 2.5) -> (2, 1.5, 4, 2.5).
    assert flipped.gt_boxes.tolist() == [[3.0, 0.5, 5.0, 2.5], [2.0, 1.5, 4.0, 2.5]]
    # Row 0 (left) takes old row 1 (right) mirrored: (6 - 4.5, 2.5, 1); row 1 takes old row 0: (6 - 1.5, 1.5, 2).
    assert flipped.gt_keypoints[0].tolist() == [[1.5, 2.5, 1.0], [4.5, 1.5, 2.0], [3.0, 3.5, 2.0]]
    assert flipped.gt_keypoints[1].tolist() == [[6.0, 0.0, 0.0], [1.0, 3.0, 2.0], [4.0, 2.0, 1.0]]
    assert flipped.gt_masks[0] == [[5.0, 0.0, 3.0, 0.0, 3.0, 2.0]]
    # Pixel (1, 1) of a 6-wide mask lands on column 6 - 1 - 1 = 4.
    assert np.array_equal(mask_utils.decode(flipped.gt_masks[1]), ones_at((HEIGHT, WIDTH), 1, 4))
    assert flipped.gt_classes.tolist() == [1, 1] and flipped.image_size == (HEIGHT, WIDTH)


def test_horizontal_flip_densepose_with_stand_in_tables():
    _, flipped = horizontal_flip(image(), people(), FLIP_INDEX, stand_in_flip())
    dense = flipped.gt_densepose[0]
    assert dense.x.tolist() == [246.0, 127.5, 6.0] and dense.y.tolist() == [5.0, 60.0, 255.0]
    # Charts 3, 24, 1 -> 4, 23, 1 (symmetry map of densepose.md §5.3).
    assert dense.chart.tolist() == [4, 23, 1]
    # Tables read with the original chart at [floor(255 V), floor(255 U)]:
    # chart 3, U 0.5, V 0.25 -> [63, 127] -> 200000 + 63000 + 127; chart 24, U 1, V 0 -> [0, 255] -> 2300255;
    # chart 1, U 0.1, V 0.9 -> [229, 25] -> 229025.
    assert dense.u.tolist() == [263127.0, 2300255.0, 229025.0]
    assert dense.v.tolist() == [-263127.0, -2300255.0, -229025.0]
    # Torso (part 1) stays part 1, its columns 30..39 become 216..225; the right hand (part 2) becomes the left
    # hand (part 3) at columns 246..255; the empty left hand becomes the empty right hand.
    assert np.array_equal(mask_utils.decode(dense.part_masks[0]), ones_at((256, 256), slice(10, 20), slice(216, 226)))
    assert np.array_equal(mask_utils.decode(dense.part_masks[2]), ones_at((256, 256), slice(0, 5), slice(246, 256)))
    assert dense.part_masks[1] == [] and all(mask == [] for mask in dense.part_masks[3:])
    other = flipped.gt_densepose[1]
    assert other.x.tolist() == [255.0] and other.chart.tolist() == [2] and other.part_masks is None


def test_flip_needs_its_tables():
    with pytest.raises(ConfigError, match="UV symmetry tables"):
        horizontal_flip(image(), people(), FLIP_INDEX)
    with pytest.raises(ConfigError, match="keypoint flip index"):
        horizontal_flip(image(), people(), None, stand_in_flip())
    with pytest.raises(ConfigError, match=r"u_transforms: expected shape \(24, 256, 256\)"):
        DensePoseFlip(np.zeros((24, 16, 16)), np.zeros((24, 256, 256)))
    with pytest.raises(DataError, match="image is 4x5 but its instances are for 4x6"):
        horizontal_flip(image()[:, :5], people(), FLIP_INDEX, stand_in_flip())


def test_flip_tables_from_a_mat_file(tmp_path):
    tables = stand_in_flip()
    cells = {}
    for key, stack in (("U_transforms", tables.u_transforms), ("V_transforms", tables.v_transforms)):
        cell = np.empty((1, 24), dtype=object)
        for chart in range(24):
            cell[0, chart] = stack[chart]
        cells[key] = cell
    savemat(tmp_path / "UV_symmetry_transforms.mat", cells)
    loaded = DensePoseFlip.from_mat(str(tmp_path / "UV_symmetry_transforms.mat"))
    assert loaded.u_transforms[2, 63, 127] == 263127.0 and loaded.v_transforms[23, 0, 255] == -2300255.0
    with pytest.raises(DataError, match="missing key 'V_transforms'"):
        savemat(tmp_path / "half.mat", {"U_transforms": cells["U_transforms"]})
        DensePoseFlip.from_mat(str(tmp_path / "half.mat"))


def test_random_flip_uses_one_draw_of_the_given_generator():
    first, second = np.random.default_rng(0).random(2)  # 0.637 and 0.270
    rng = np.random.default_rng(0)
    kept_image, kept = random_flip(image(), people(), first - 0.01, rng, FLIP_INDEX, stand_in_flip())
    assert kept.gt_boxes.tolist() == people().gt_boxes.tolist() and kept_image[0, 0, 0] == 0
    assert rng.random() == second
    _, flipped = random_flip(image(), people(), first + 0.01, np.random.default_rng(0), FLIP_INDEX, stand_in_flip())
    assert flipped.gt_boxes[0].tolist() == [3.0, 0.5, 5.0, 2.5]
    _, legacy = random_flip(image(), people(), 0.55, np.random.RandomState(0), FLIP_INDEX, stand_in_flip())
    assert legacy.gt_boxes[0].tolist() == [3.0, 0.5, 5.0, 2.5]  # RandomState(0) draws 0.5488 < 0.55


def test_resize_scales_coordinates_and_keeps_densepose():
    resized_image, resized = resize(image(), people(), 8, 3)
    assert resized_image.shape == (8, 3, 3) and resized_image.dtype == np.uint8 and resized.image_size == (8, 3)
    # x scales by 3 / 6 = 0.5, y by 8 / 4 = 2.
    assert resized.gt_boxes.tolist() == [[0.5, 1.0, 1.5, 5.0], [1.0, 3.0, 2.0, 5.0]]
    assert resized.gt_keypoints[0].tolist() == [[0.75, 3.0, 2.0], [2.25, 5.0, 1.0], [1.5, 7.0, 2.0]]
    assert resized.gt_masks[0] == [[0.5, 0.0, 1.5, 0.0, 1.5, 4.0]]
    # Output pixel centre (i + 0.5, j + 0.5) samples input (i + 0.5) / 2, (j + 0.5) * 2: column 0 reads input
    # column 1, rows 2 and 3 read input row 1.
    assert np.array_equal(mask_utils.decode(resized.gt_masks[1]), ones_at((8, 3), [2, 3], 0))
    assert resized.gt_densepose[0].x.tolist() == [10.0, 128.5, 250.0]


@pytest.mark.parametrize("size, expected", [
    ((480, 640), (800, 1067)),   # 640 * 800 / 480 = 1066.67
    ((425, 640), (800, 1205)),   # 640 * 800 / 425 = 1204.71
    ((640, 640), (800, 800)),
    ((100, 400), (333, 1333)),   # 3200 > 1333: 800 * 1333 / 3200 = 333.25
    ((1000, 500), (1333, 667)),  # 1600 > 1333: 800 * 1333 / 1600 = 666.5 -> int(667.0)
    ((900, 500), (1333, 741)),   # 1440 > 1333: 800 * 1333 / 1440 = 740.56
])
def test_resize_shortest_edge_size(size, expected):
    assert resize_shortest_edge_size(*size, 800, 1333) == expected


def test_resize_shortest_edge_rounds_halves_up():
    # 5 * 2 / 4 = 2.5 -> int(3.0) = 3 (Python's round would give 2).
    assert resize_shortest_edge_size(4, 5, 2, 100) == (2, 3)


def test_crop_shifts_clips_and_marks_keypoints_outside():
    cropped_image, cropped = crop(image(), people(), 1, 1, 4, 2)
    assert cropped_image.shape == (2, 4, 3) and cropped_image[0, 0, 0] == 11 and cropped_image[1, 3, 0] == 24
    # (1, 0.5, 3, 2.5) - (1, 1) = (0, -0.5, 2, 1.5) -> clipped (0, 0, 2, 1.5); (2, 1.5, 4, 2.5) -> (1, 0.5, 3, 1.5).
    assert cropped.gt_boxes.tolist() == [[0.0, 0.0, 2.0, 1.5], [1.0, 0.5, 3.0, 1.5]]
    # (3, 3.5) -> (2, 2.5) leaves the 4 x 2 window: visibility 0, position kept. (5, 3) -> (4, 2) is on its edge.
    assert cropped.gt_keypoints[0].tolist() == [[0.5, 0.5, 2.0], [3.5, 1.5, 1.0], [2.0, 2.5, 0.0]]
    assert cropped.gt_keypoints[1].tolist() == [[4.0, 2.0, 2.0], [-1.0, -1.0, 0.0], [1.0, 1.0, 1.0]]
    assert cropped.gt_masks[0] == [[0.0, -1.0, 2.0, -1.0, 2.0, 1.0]]
    assert np.array_equal(mask_utils.decode(cropped.gt_masks[1]), ones_at((2, 4), 0, 0))
    # Person 0's box was clipped, so its box-relative DensePose frame is gone; person 1's box is inside.
    assert cropped.gt_densepose[0] is None and cropped.gt_densepose[1].x.tolist() == [1.0]


def test_crop_window_must_be_inside_and_empty_boxes_can_be_dropped():
    with pytest.raises(DataError, match="crop window x0=3, y0=0, width=4, height=2 is not inside the 4x6 image"):
        crop(image(), people(), 3, 0, 4, 2)
    _, cropped = crop(image(), people(), 4, 0, 2, 1)
    # (1, 0.5, 3, 2.5) - 4 clips to (0, 0.5, 0, 1): empty. (2, 1.5, 4, 2.5) clips to (0, 1, 0, 1): empty.
    boxes = cropped.gt_boxes
    assert boxes.tolist() == [[0.0, 0.5, 0.0, 1.0], [0.0, 1.0, 0.0, 1.0]]
    assert len(cropped[(boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])]) == 0
