"""``DetectorEstimator``: the configured two-stage detector with MODEL.WEIGHTS, ready to find people in images."""
import os
from typing import Dict, List, Sequence

import numpy as np
import torch
from yacs.config import CfgNode

from ...engine.device import configure_cudnn, resolve_device
from ...models import build_model, load_weights, prepare_for_inference
from ...utils.errors import CheckpointError
from ...data.detection_mapper import DetectionMapper, read_image
from ...data.image_io import Image, check_rgb_image

Detection = Dict[str, object]


class DetectorEstimator:
    """The detector of ``cfg`` with MODEL.WEIGHTS loaded strictly, in its inference form on DEVICE."""

    def __init__(self, cfg: CfgNode) -> None:
        if not cfg.MODEL.WEIGHTS:
            raise CheckpointError("MODEL.WEIGHTS is empty; pass the detector's weights, e.g. MODEL.WEIGHTS model_final.pth")
        self.cfg = cfg
        self.device = resolve_device(cfg.DEVICE)
        configure_cudnn(cfg)
        self.model = build_model(cfg)
        load_weights(self.model, cfg.MODEL.WEIGHTS, strict=True)
        # Norms folded into the convolutions, channels_last: the same function, faster (bench/detector.py).
        self.model = prepare_for_inference(self.model, self.device)
        self.mapper = DetectionMapper.from_config(cfg, is_train=False)

    def inputs(self, image: np.ndarray) -> Dict[str, object]:
        """The model's input dict for one RGB uint8 image: resized as at test time, in INPUT.FORMAT order."""
        height, width = image.shape[:2]
        record = {"file_name": "", "image_id": 0, "height": height, "width": width, "annotations": []}
        return self.mapper.map_image(image, record)

    @torch.inference_mode()
    def predict_batch(self, images: Sequence[Image]) -> List[List[Detection]]:
        """For each image (RGB uint8 array or path): ``[{"box": (4,) x1, y1, x2, y2, "score", "class"}]``.

        Paths are decoded as validation decodes them (``read_image``: Pillow, EXIF orientation applied).
        """
        arrays = [read_image(os.fspath(image)) if isinstance(image, (str, os.PathLike)) else check_rgb_image(image)
                  for image in images]
        return [self.results(output["instances"]) for output in self.model([self.inputs(a) for a in arrays])]

    @staticmethod
    def results(instances) -> List[Detection]:
        """One image's detections as the family's plain dicts (the detector: boxes, scores, classes)."""
        return detections_as_dicts(instances)

    def predict(self, image: Image) -> List[Detection]:
        """The detections of one image, by decreasing score."""
        return self.predict_batch([image])[0]


def detections_as_dicts(instances) -> List[Detection]:
    """Plain per-detection dicts (NumPy boxes) sorted by decreasing score."""
    order = torch.argsort(instances.scores, descending=True, stable=True)
    return [{"box": instances.pred_boxes[i].cpu().numpy().astype(np.float32), "score": float(instances.scores[i]),
             "class": int(instances.pred_classes[i])} for i in order.tolist()]
