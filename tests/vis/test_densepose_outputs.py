"""DensePose drawing: the release's whole-image IUV / INDS layout rebuilt from its own demo outputs, overlap
rules worked by hand, and overlays that only touch the detections' boxes."""
from pathlib import Path

import cv2
import numpy as np
import pytest

from posekit.vis.densepose import (draw_bbox, draw_dp_contour, draw_dp_segm, draw_dp_u, draw_dp_v,
                                   grey_background, instance_image, iuv_image, write_iuv_outputs)

SAMPLES = Path(__file__).resolve().parents[2] / "data" / "samples" / "densepose"
IUV = cv2.imread(str(SAMPLES / "demo_im_IUV.png"), cv2.IMREAD_UNCHANGED)
INDS = cv2.imread(str(SAMPLES / "demo_im_INDS.png"), cv2.IMREAD_UNCHANGED)
PHOTO = cv2.imread(str(SAMPLES / "demo_im.jpg"))


def detections_from_release():
    """One detection per instance index of the demo map: its box is the bounding box of the index's pixels,
    its result the I / U / V crop there (zero off the instance); scores rise with the index, as in the release.
    U and V are recovered as the middle of their byte's bin, (byte + 0.5) / 255."""
    dets = []
    for index in np.unique(INDS)[1:]:
        ys, xs = np.nonzero(INDS == index)
        x1, y1, x2, y2 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
        mine = INDS[y1:y2, x1:x2] == index
        crop = IUV[y1:y2, x1:x2]
        uv = np.where(mine, (np.moveaxis(crop[..., 1:], -1, 0) + 0.5) / 255, 0).astype(np.float32)
        dets.append({"bbox": [float(x1), float(y1), float(x2), float(y2)], "score": index / 100.0,
                     "labels": np.where(mine, crop[..., 0], 0).astype(np.uint8), "uv": uv})
    return dets


def test_the_release_outputs_are_what_the_readme_says():
    assert IUV.shape == (600, 1116, 3) and INDS.shape == (600, 1116)
    assert ((IUV[..., 0] > 0) == (INDS > 0)).all()
    assert np.unique(INDS)[1:].tolist() == list(range(7, 20))


def test_release_iuv_and_inds_are_reproduced_pixel_for_pixel(tmp_path):
    # Recovered instances are disjoint by construction, so every pixel, overlapping boxes included, must match.
    # The lowest index in the demo map is 7 (seven detections fell below the threshold).
    dets = detections_from_release()[::-1]  # input order must not matter: painting follows the scores
    iuv_path, inds_path = write_iuv_outputs(tmp_path / "demo_im", IUV.shape, dets, first_index=7)
    assert Path(iuv_path).name == "demo_im_IUV.png" and Path(inds_path).name == "demo_im_INDS.png"
    written_iuv = cv2.imread(iuv_path, cv2.IMREAD_UNCHANGED)
    written_inds = cv2.imread(inds_path, cv2.IMREAD_UNCHANGED)
    assert written_iuv.dtype == np.uint8 and written_inds.dtype == np.uint8
    assert np.array_equal(written_iuv, IUV)
    assert np.array_equal(written_inds, INDS)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo_im_INDS.png", "demo_im_IUV.png"]


def square(x1, y1, size, label, u, v, score):
    labels = np.full((size, size), label, np.uint8)
    uv = np.stack([np.full((size, size), u, np.float32), np.full((size, size), v, np.float32)])
    return {"bbox": [x1, y1, x1 + size, y1 + size], "score": score, "labels": labels, "uv": uv}


def test_overlap_lower_score_wins_and_boxes_truncate_by_hand():
    low = square(2.7, 1.9, 4, label=3, u=0.5, v=0.25, score=0.6)   # placed at (2, 1): rows 1..4, cols 2..5
    high = square(4.2, 3.0, 4, label=9, u=0.1, v=0.9, score=0.95)  # placed at (4, 3): rows 3..6, cols 4..7
    iuv = iuv_image((10, 10), [high, low])
    inds = instance_image((10, 10), [high, low])
    assert tuple(iuv[3, 4]) == (3, 127, 63)     # overlap: the lower score keeps it; floor(127.5), floor(63.75)
    assert tuple(iuv[6, 7]) == (9, 25, 229)     # floor(25.5), floor(229.5)
    assert tuple(iuv[1, 2]) == (3, 127, 63) and not iuv[0].any() and not iuv[:, :2].any()
    assert inds[3, 4] == 1 and inds[6, 7] == 2 and inds[0, 0] == 0
    assert (inds > 0).sum() == 16 + 16 - 4


def test_per_channel_fill_of_the_release():
    # The release fills each channel where it is still 0: a U of exactly 0 takes the later detection's U.
    low = square(0, 0, 3, label=2, u=0.0, v=0.5, score=0.1)
    high = square(0, 0, 3, label=5, u=0.4, v=0.8, score=0.2)
    assert tuple(iuv_image((3, 3), [low, high])[1, 1]) == (2, 102, 127)


def test_boxes_past_the_image_border_are_clipped():
    det = square(-2.0, 8.0, 5, label=4, u=0.2, v=0.2, score=0.5)
    iuv = iuv_image((10, 10), [det])
    assert (iuv[8:, :3, 0] == 4).all() and (iuv[..., 0] > 0).sum() == 2 * 3


DRAWERS = [draw_dp_segm, draw_dp_u, draw_dp_v, draw_dp_contour, draw_bbox]


@pytest.mark.parametrize("draw", DRAWERS[:4], ids=lambda f: f.__name__)
def test_a_box_past_the_right_edge_draws_nothing(draw):
    # A detection starting at x = 10 on a 10-pixel-wide image has no visible column (the colour map of an empty
    # matrix killed the process with SIGFPE; the contours failed in np.delete).
    det = square(10.0, 2.0, 3, label=4, u=0.2, v=0.2, score=0.5)
    image = np.full((10, 10, 3), 7, np.uint8)
    assert np.array_equal(draw(image, [det]), image)


@pytest.mark.parametrize("draw", DRAWERS, ids=lambda f: f.__name__)
def test_overlays_touch_only_the_boxes(draw):
    dets = detections_from_release()
    image = grey_background(PHOTO)
    drawn = draw(image, dets)
    assert drawn.shape == image.shape and drawn.dtype == np.uint8
    assert not np.array_equal(drawn, image)
    inside = np.zeros(image.shape[:2], bool)
    for det in dets:
        x1, y1, x2, y2 = (int(v) for v in det["bbox"])
        inside[y1:y2 + 1, x1:x2 + 1] = True  # the rectangle's far edge is drawn on x2, y2
    changed = (drawn != image).any(axis=2)
    assert not changed[~inside].any()
    assert np.array_equal(image, grey_background(PHOTO))  # the input is left alone


def test_segm_overlay_colour_by_hand():
    image = np.full((6, 6, 3), 100, np.uint8)
    det = square(1, 1, 3, label=24, u=0.5, v=0.5, score=0.9)
    det["labels"][0, 0] = 0
    drawn = draw_dp_segm(image, [det])
    parula_top = cv2.applyColorMap(np.array([[255]], np.uint8), cv2.COLORMAP_PARULA)[0, 0].astype(float)
    expected = np.floor(100 * 0.3 + parula_top * 0.7)
    assert np.allclose(drawn[2, 2], expected, atol=1)
    assert (drawn[1, 1] == 100).all()  # background pixel of the box stays


def test_contour_lines_sit_on_level_crossings():
    labels = np.ones((5, 20), np.uint8)
    u = np.tile(np.linspace(0, 0.99, 20, dtype=np.float32), (5, 1))
    det = {"bbox": [0, 0, 20, 5], "score": 1.0, "labels": labels, "uv": np.stack([u, np.zeros_like(u)])}
    drawn = draw_dp_contour(np.zeros((5, 20, 3), np.uint8), [det])
    columns = np.nonzero(drawn.any(axis=(0, 2)))[0]
    expected = [x for x in range(19) if int(u[0, x] * 10) != int(u[0, x + 1] * 10)]
    assert columns.tolist() == expected and len(expected) == 9


def test_grey_background_has_three_equal_channels():
    grey = grey_background(PHOTO)
    assert grey.shape == PHOTO.shape and (grey[..., 0] == grey[..., 2]).all()


def test_bbox_rectangle_is_green_and_score_text_is_inside():
    det = square(10, 10, 60, label=1, u=0.5, v=0.5, score=0.98765)
    drawn = draw_bbox(np.zeros((90, 90, 3), np.uint8), [det])
    assert tuple(drawn[10, 40]) == (0, 255, 0) and tuple(drawn[70, 40]) == (0, 255, 0)
    assert drawn[12:30, 12:68].any()  # the score text near the top-left corner
    assert not drawn[40:68, 12:68].any()
