"""``DekrEstimator``: a configured DEKR model with its weights, ready to estimate poses in images."""
from typing import Dict, List, Sequence, Tuple

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
from ...utils.errors import CheckpointError

Prediction = Dict[str, object]


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

    def _load_rescore_net(self) -> torch.nn.Module:
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

    def predict_batch(self, images: Sequence[Image]) -> List[List[Prediction]]:
        """``predict`` for each image, in order; images of one size go through the network as one batch.

        All same-size images form a single batch (post-processing stays per image), so pass at most as
        many as fit in memory, e.g. a few video frames at a time.
        """
        arrays = [load_rgb_image(image) for image in images]
        with torch.inference_mode():
            results = predict_images(self.model, arrays, self.cfg, self.keypoint_set, self.rescore_net)
        return [predictions_from_arrays(poses, scores) for poses, scores in results]


def predictions_from_arrays(poses: np.ndarray, scores: np.ndarray) -> List[Prediction]:
    """Poses (N, K, 3) and scores (N,) as a list of per-person dicts sorted by decreasing score."""
    order = np.argsort(-np.asarray(scores), kind="stable")
    return [{"keypoints": np.asarray(poses[i], dtype=np.float32), "score": float(scores[i])} for i in order]
