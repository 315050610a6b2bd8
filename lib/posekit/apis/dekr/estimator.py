"""``DekrEstimator``: a configured DEKR model with its weights, ready to estimate poses in images."""
import logging
import os
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from yacs.config import CfgNode

from ...data.image_io import Image, check_rgb_image, load_rgb_image
from ...data.metadata import KeypointSet, keypoint_set_from_cfg
from ...models.checkpoint import load_weights
from ...engine.device import configure_cudnn, resolve_device
from ...inference.dekr.pipeline import predict_image, predict_images
from ...models import build_model, prepare_for_inference
from ...models.dekr import build_rescore_net
from ...utils.errors import CheckpointError, DataError

Prediction = Dict[str, object]
logger = logging.getLogger(__name__)


class DekrEstimator:
    """DEKR built from ``cfg`` with TEST.MODEL_FILE loaded (and the rescore net when RESCORE.VALID), in eval mode.

    Runs on cfg.DEVICE ('' = the GPU when there is one, else the CPU). ``model`` is in its inference form
    (``prepare_for_inference``: batch norms folded, channels_last), the same function computed faster.
    """

    def __init__(self, cfg: CfgNode) -> None:
        if not cfg.TEST.MODEL_FILE:
            raise CheckpointError("TEST.MODEL_FILE is empty; pass the weights file, e.g. "
                                  "TEST.MODEL_FILE model/pose_coco/pose_dekr_hrnetw32_coco.pth")
        self.cfg = cfg
        self.device = resolve_device(cfg.DEVICE)
        configure_cudnn(cfg)
        self.keypoint_set: KeypointSet = keypoint_set_from_cfg(cfg)
        self.model = build_model(cfg)
        load_weights(self.model, cfg.TEST.MODEL_FILE, strict=True)
        self.model = prepare_for_inference(self.model, self.device)
        self.rescore_net = self._load_rescore_net() if cfg.RESCORE.VALID else None

    def _load_rescore_net(self) -> Optional[torch.nn.Module]:
        """The rescore net, or None (said in one line) when the keypoint set has no rescore links or
        RESCORE.MODEL_FILE does not exist: the official demo never rescores either."""
        if not self.keypoint_set.rescore_links:
            logger.warning("keypoint set '%s' has no rescore links: poses are not rescored", self.keypoint_set.name)
            return None
        if not os.path.isfile(self.cfg.RESCORE.MODEL_FILE):
            logger.warning("RESCORE.MODEL_FILE %s not found: poses are not rescored (set RESCORE.VALID False to "
                           "silence this)", self.cfg.RESCORE.MODEL_FILE or "''")
            return None
        net = build_rescore_net(self.cfg)
        try:
            load_weights(net, self.cfg.RESCORE.MODEL_FILE, strict=True)
        except CheckpointError as err:
            raise CheckpointError(f"RESCORE.MODEL_FILE: {err} (or set RESCORE.VALID False)") from None
        return net.to(self.device).eval()

    @torch.inference_mode()
    def estimate(self, image: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """Raw pipeline output for one RGB uint8 (H, W, 3) image: poses (N, K, 3) and scores (N,), unsorted."""
        return predict_image(self.model, check_rgb_image(image), self.cfg, self.keypoint_set, self.rescore_net)

    def predict(self, image: Image) -> List[Prediction]:
        """People in one image (RGB uint8 array or image path): ``{"keypoints": (K, 3) x, y, score, "score"}``.

        Sorted by decreasing score.
        """
        return self.predict_batch([image])[0]

    def predict_batch(self, images: Sequence[Image],
                      failures: Optional[List[Tuple[int, str]]] = None) -> List[List[Prediction]]:
        """``predict`` for each image, in order; images of one size go through the network as one batch.

        All same-size images form a single batch (post-processing stays per image), so pass at most as
        many as fit in memory, e.g. a few video frames at a time. An unreadable image raises DataError,
        unless a ``failures`` list is given: then its result is an empty list and ``(index, reason)`` is
        appended to ``failures``, and the other images are still predicted.
        """
        arrays: List[Optional[np.ndarray]] = []
        for index, image in enumerate(images):
            try:
                arrays.append(load_rgb_image(image))
            except DataError as err:
                if failures is None:
                    raise
                failures.append((index, str(err)))
                arrays.append(None)
        readable = [array for array in arrays if array is not None]
        with torch.inference_mode():
            results = iter(predict_images(self.model, readable, self.cfg, self.keypoint_set, self.rescore_net))
        return [[] if array is None else predictions_from_arrays(*next(results)) for array in arrays]


def predictions_from_arrays(poses: np.ndarray, scores: np.ndarray) -> List[Prediction]:
    """Poses (N, K, 3) and scores (N,) as a list of per-person dicts sorted by decreasing score."""
    order = np.argsort(-np.asarray(scores), kind="stable")
    return [{"keypoints": np.asarray(poses[i], dtype=np.float32), "score": float(scores[i])} for i in order]
