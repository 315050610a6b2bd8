"""Instances: fields of equal length, consistent indexing, concatenation, devices, pickling."""
import pickle

import numpy as np
import pytest
import torch

from posekit.structures import DensePosePoints, Instances
from posekit.utils.errors import DataError


def points(first_x):
    return DensePosePoints.from_lists([first_x, 10.0], [20.0, 30.0], [1.0, 24.0], [0.5, 0.25], [0.75, 1.0])


def three_people():
    """Person k has box (k, 2k, k + 10, 2k + 10), class k + 1, mask 'mask k' and DensePose on person 1 only."""
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [1.0, 2.0, 11.0, 12.0], [2.0, 4.0, 12.0, 14.0]])
    return Instances((40, 60), gt_boxes=boxes, gt_classes=torch.tensor([1, 2, 3]),
                     gt_masks=["mask 0", "mask 1", "mask 2"], gt_densepose=[None, points(5.0), None])


def test_fields_are_attributes_and_lengths_must_agree():
    people = three_people()
    assert len(people) == 3 and people.image_size == (40, 60)
    assert people.has("gt_masks") and not people.has("gt_keypoints")
    assert people.get("gt_classes").tolist() == [1, 2, 3] and people.gt_masks[2] == "mask 2"
    assert list(people.fields()) == ["gt_boxes", "gt_classes", "gt_masks", "gt_densepose"]
    people.gt_keypoints = torch.zeros(3, 17, 3)
    assert people.has("gt_keypoints")
    with pytest.raises(DataError, match="'gt_scores' has 2 entries, expected 3"):
        people.gt_scores = torch.zeros(2)
    with pytest.raises(AttributeError, match="no field 'gt_scores'"):
        people.gt_scores
    people.remove("gt_keypoints")
    assert not people.has("gt_keypoints")
    assert len(Instances((5, 5))) == 0


@pytest.mark.parametrize("index, expected", [
    (1, [1]),
    (-1, [2]),
    (slice(1, None), [1, 2]),
    ([True, False, True], [0, 2]),
    (torch.tensor([False, True, True]), [1, 2]),
    (np.array([2, 0]), [2, 0]),
    (torch.tensor([1, 1]), [1, 1]),
    ([], []),
])
def test_indexing_selects_the_same_people_in_every_field(index, expected):
    people = three_people()
    chosen = people[index]
    assert chosen.image_size == (40, 60) and len(chosen) == len(expected)
    assert chosen.gt_classes.tolist() == [k + 1 for k in expected]
    assert chosen.gt_boxes[:, 0].tolist() == [float(k) for k in expected]
    assert chosen.gt_masks == [f"mask {k}" for k in expected]
    assert [entry is not None for entry in chosen.gt_densepose] == [k == 1 for k in expected]


def test_bad_indices_raise():
    people = three_people()
    with pytest.raises(IndexError):
        people[3]
    with pytest.raises(IndexError):
        people[[True, False]]


def test_cat_joins_fields_in_order_and_checks_compatibility():
    people = three_people()
    joined = Instances.cat([people[[2]], people[:2]])
    assert joined.gt_classes.tolist() == [3, 1, 2]
    assert joined.gt_masks == ["mask 2", "mask 0", "mask 1"]
    assert joined.gt_boxes[:, 1].tolist() == [4.0, 0.0, 2.0]
    with pytest.raises(DataError, match="image sizes differ"):
        Instances.cat([people, Instances((41, 60), **people.fields())])
    fewer = people[:1]
    fewer.remove("gt_masks")
    with pytest.raises(DataError, match="fields differ"):
        Instances.cat([people, fewer])


def test_to_moves_tensors_and_densepose_points_only():
    moved = three_people().to("meta")
    assert moved.gt_boxes.device.type == "meta" and moved.gt_classes.device.type == "meta"
    assert moved.gt_masks == ["mask 0", "mask 1", "mask 2"]
    assert moved.gt_densepose[1].u.device.type == "meta" and moved.gt_densepose[0] is None


def test_pickle_round_trip_for_data_loader_workers():
    restored = pickle.loads(pickle.dumps(three_people()))
    assert restored.gt_classes.tolist() == [1, 2, 3] and restored.image_size == (40, 60)
    assert restored.gt_densepose[1].x.tolist() == [5.0, 10.0]


def test_densepose_points_types_and_checks():
    person = points(5.0)
    assert len(person) == 2 and person.chart.dtype == torch.int64 and person.chart.tolist() == [1, 24]
    assert person.u.dtype == torch.float32 and person.part_masks is None
    with pytest.raises(DataError, match="one length"):
        DensePosePoints.from_lists([1.0], [1.0, 2.0], [1], [0.5], [0.5])
    with pytest.raises(DataError, match="14 part masks"):
        DensePosePoints.from_lists([1.0], [1.0], [1], [0.5], [0.5], part_masks=[[]] * 13)
