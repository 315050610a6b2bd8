"""CrowdPose layout: ``json/crowdpose_<split>.json`` and ``images[.zip]``."""
import os

from .keypoints import DatasetLayout, image_source


def crowdpose_layout(root: str, split: str, data_format: str) -> DatasetLayout:
    """The CrowdPose layout of ``split`` under ``root``: no segment masks, every labelled person has a centre."""
    source, zipped = image_source(os.path.join(root, "images.zip"), os.path.join(root, "images"), data_format)
    return DatasetLayout(annotation_file=os.path.join(root, "json", f"crowdpose_{split}.json"),
                         image_source=source, zipped=zipped, masks_from_segments=False, small_person_rule=False)
