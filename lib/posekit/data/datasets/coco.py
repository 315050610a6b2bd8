"""COCO keypoints layout: ``annotations/person_keypoints_<split>.json`` and ``images/<split>[.zip]``."""
import os

from .keypoints import DatasetLayout, image_source


def coco_layout(root: str, split: str, data_format: str) -> DatasetLayout:
    """The COCO-format layout of ``split`` under ``root`` (also used by converted DeepFashion2 files)."""
    # test-dev has only image information; its images ship in the test2017 folder.
    is_test = "test" in split
    annotation_name = f"image_info_{split}.json" if is_test else f"person_keypoints_{split}.json"
    image_set = "test2017" if is_test else split
    images = os.path.join(root, "images")
    source, zipped = image_source(os.path.join(images, f"{image_set}.zip"), os.path.join(images, image_set),
                                  data_format)
    return DatasetLayout(annotation_file=os.path.join(root, "annotations", annotation_name),
                         image_source=source, zipped=zipped, masks_from_segments=True, small_person_rule=True)
