"""``custom``: any COCO-style keypoint json, ``annotations/<split>.json`` and ``images/<split>[.zip]`` under
DATASET.ROOT unless DATASET.{TRAIN,TEST}_{ANNOTATIONS,IMAGES} give them. CrowdPose's rules: no segment masks
(segmentations are optional), every labelled person has a centre."""
from ..dataset_paths import custom_annotation_file, custom_image_folder
from .keypoints import DatasetLayout, image_source


def custom_layout(root: str, split: str, data_format: str) -> DatasetLayout:
    """The ``custom`` layout of ``split`` under ``root``."""
    folder = custom_image_folder(root, split)
    source, zipped = image_source(folder + ".zip", folder, data_format)
    return DatasetLayout(annotation_file=custom_annotation_file(root, split), image_source=source, zipped=zipped,
                         masks_from_segments=False, small_person_rule=False)
