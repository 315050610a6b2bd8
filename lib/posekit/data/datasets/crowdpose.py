"""CrowdPose layout: ``json/crowdpose_<split>.json`` and ``images[.zip]``."""
import os

from .keypoints import DatasetLayout, image_source


def crowdpose_results_image_id(file_name: str) -> int:
    """CrowdPose results use the integer before the first dot of the file name."""
    return int(os.path.basename(file_name).split(".")[0])


def crowdpose_layout(root: str, split: str, data_format: str) -> DatasetLayout:
    """The CrowdPose layout of ``split`` under ``root``: no segment masks, every labelled person has a centre."""
    source, zipped = image_source(os.path.join(root, "images.zip"), os.path.join(root, "images"), data_format)
    return DatasetLayout(annotation_file=os.path.join(root, "json", f"crowdpose_{split}.json"),
                         image_source=source, zipped=zipped, masks_from_segments=False,
                         small_person_rule=False, results_image_id=crowdpose_results_image_id)
