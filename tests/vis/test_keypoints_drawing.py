"""Skeleton drawing: joints colour their own pixel, limbs join visible joints, hidden joints draw nothing."""
import numpy as np

from posekit.data.metadata import COCO, KeypointSet
from posekit.vis import draw_poses, limb_colours

# One limb: its colour is the first hue of the palette, pure red, (B, G, R) = (0, 0, 255).
TWO_JOINTS = KeypointSet(name="two_joints", joint_names=("a", "b"), flip_pairs=(), sigmas=(0.1, 0.1),
                         skeleton=((0, 1),))
RED = (0, 0, 255)


def blank(height=40, width=60):
    return np.zeros((height, width, 3), np.uint8)


def test_visible_joints_colour_their_pixels_and_the_limb_between_them():
    pose = np.array([[10, 12, 0.9], [50, 12, 0.8]], np.float32)
    drawn = draw_poses(blank(), [pose], TWO_JOINTS, threshold=0.5)
    assert tuple(drawn[12, 10]) == RED
    assert tuple(drawn[12, 50]) == RED
    assert tuple(drawn[12, 30]) == RED  # the middle of the limb
    assert not drawn[30:, :].any()  # nothing far below the limb


def test_joint_below_threshold_leaves_the_image_untouched():
    image = blank()
    image[5, 5] = (7, 8, 9)
    pose = np.array([[10, 12, 0.2], [50, 12, 0.9]], np.float32)
    drawn = draw_poses(image, [pose[:1].repeat(2, axis=0)], TWO_JOINTS, threshold=0.5)
    assert np.array_equal(drawn, image)
    # With one of the two joints hidden, only the visible joint's disc is drawn: no limb.
    drawn = draw_poses(image, [pose], TWO_JOINTS, threshold=0.5)
    changed_y, changed_x = np.nonzero((drawn != image).any(axis=2))
    assert changed_x.size > 0
    assert ((changed_x - 50) ** 2 + (changed_y - 12) ** 2 <= 4 ** 2 + 1).all()


def test_input_image_is_not_modified():
    image = blank()
    draw_poses(image, [np.array([[10, 12, 1.0], [50, 12, 1.0]], np.float32)], TWO_JOINTS)
    assert not image.any()


def test_coco_skeleton_limbs_have_distinct_colours_and_every_joint_is_drawn():
    assert len(set(limb_colours(len(COCO.skeleton)))) == len(COCO.skeleton)
    rng = np.random.default_rng(0)
    pose = np.concatenate([rng.uniform(5, 195, (17, 2)), np.ones((17, 1))], axis=1).astype(np.float32)
    drawn = draw_poses(blank(200, 200), [pose], COCO)
    for x, y, _ in pose:
        assert drawn[int(round(y)), int(round(x))].any()
