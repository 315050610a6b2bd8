"""KTN's knowledge transfer machines (densepose.md 3.4, 3.5, 12): predictors whose fine-segmentation (I)
transposed-conv kernel is generated from other classifiers' weights through relation matrices and an MLP.

Generic pieces (AMANet reuses them): ``flatten_classifier`` (a transposed-conv classifier's weight as one row
per class), ``relation_matrix`` / ``relation_parameter`` (a stored sources x 25 graph as a trainable 25 x sources
matrix), ``transfer_mlp`` (Linear, LeakyReLU 0.02, Linear), ``CachedKernel`` (a generated kernel computed once
per forward in training and kept in eval mode until train(), loading or a device / dtype move), and
``KeypointDeconvPredictor`` (the keypoint classifier of keypoint pre-training).

* ``DensePoseKptRelationPredictor`` (KTM v1): U, V, M transposed convs; the keypoint classifier
  ``body_kpt_weight`` / ``body_kpt_bias`` (C x 17 x 4 x 4, 17) gives K; I's kernel =
  MLP(R_k A_k) with R_k = ``kpt_surface_transfer_matrix`` (25 x 17), reshaped to C x 25 x 4 x 4, no bias.
* ``KTNv2Predictor`` (KTM v2): U, V, M, S15 (``ann_index_lowres``), K (``k_lowres``); I's kernel =
  MLP([R_k A_k, R_b B, R_p A_p]) with the detached box classifier and regressor weights B (6 x D) and the
  trainable ``kpt_crgk_matrix`` (25 x 17), ``bbox_crgk_matrix`` (25 x 6), ``part_crgk_matrix`` (25 x 15).

Every output is bilinearly upsampled by UP_SCALE after its x2 transposed conv, K by KPT_UP_SCALE.
"""
import functools
import logging
import os
from typing import Dict, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from yacs.config import CfgNode

from ...data.knowledge_graphs import build_relation_graphs, load_relation_graph
from ...utils.errors import CheckpointError, ConfigError
from ..densepose.predictor import BODY_MASK_CHANNELS, DENSEPOSE_PREDICTOR_REGISTRY
from ..detection.keypoint_head import keypoint_deconv, msra_fill_all, upsample
from ..safe_pickle import load_safe_pickle

logger = logging.getLogger(__name__)

LEAKY_SLOPE = 0.02
PART_CHANNELS = 15  # background + 14 coarse parts (KTNv2's S)
BOX_ROWS = 6  # person class + background scores, 4 box-regression rows
# Relation graphs by npz key: (sources, config key of their file), stored sources x (NUM_PATCHES + 1).
RELATION_GRAPHS = {"kpt_surf": "KPT_SURF_RELATION_DIR", "part_surf": "PART_SURF_RELATION_DIR",
                   "person_surf": "BBOX_SURF_RELATION_DIR"}
RANDOM_RELATION_STD = 0.001  # N(0, 0.001): how KTNv2-hist and AMANet initialise matrices without a graph
KPT_CLASSIFIER_KEY = "MODEL.ROI_DENSEPOSE_HEAD.KPT_CLASSIFIER_WEIGHT_DIR"


def flatten_classifier(weight: Tensor) -> Tensor:
    """(C_in, K, k, k) transposed-conv weight -> (K, C_in k k), columns ordered (in-channel, kh, kw)."""
    return weight.permute(1, 0, 2, 3).reshape(weight.shape[1], -1)


def kernel_from_rows(rows: Tensor, in_channels: int, kernel_size: int) -> Tensor:
    """(K, C_in k k) generated rows -> the (C_in, K, k, k) transposed-conv kernel (inverse of flatten_classifier)."""
    return rows.reshape(rows.shape[0], in_channels, kernel_size, kernel_size).permute(1, 0, 2, 3)


def transfer_mlp(in_features: int, out_features: int) -> nn.Sequential:
    """Linear, LeakyReLU(0.02), Linear (children 0, 2); Kaiming-normal fan_out weights, zero biases."""
    mlp = nn.Sequential(nn.Linear(in_features, out_features), nn.LeakyReLU(LEAKY_SLOPE),
                        nn.Linear(out_features, out_features))
    msra_fill_all(mlp)
    return mlp


def relation_matrix(path: str, name: str, sources: int, charts: int, key: str) -> Tensor:
    """The (charts, sources) float32 relation matrix of graph ``name`` stored sources x charts in the npz ``path``
    (tools/build_knowledge_graph.py); without a file (``key`` empty) the graph the tool builds without GloVe and
    Visual Genome: the anatomical rules x 0.3 (zero for the person graph, which has no rules), densepose.md 3.6."""
    if path:
        graph = load_relation_graph(path, name, (sources, charts))
    else:
        logger.warning("%s is empty: the %s relation matrix starts from the anatomical rules x 0.3, not from a "
                       "knowledge graph", key, name)
        graph = _rule_graphs()[name]
        if graph.shape != (sources, charts):
            raise ConfigError(f"{key}: the rule graph '{name}' is {graph.shape}, the model needs ({sources}, "
                              f"{charts}); give a graph file")
    return torch.from_numpy(graph.T.astype(np.float32))


@functools.lru_cache(maxsize=1)
def _rule_graphs() -> Dict[str, np.ndarray]:
    """The graphs built without GloVe and Visual Genome, once per process (they log that once)."""
    return build_relation_graphs()


def relation_parameter(matrix, sources: int, charts: int, what: str) -> nn.Parameter:
    """A trainable (charts, sources) copy of ``matrix`` (array or tensor), its shape checked."""
    tensor = matrix.float() if isinstance(matrix, Tensor) else torch.as_tensor(np.asarray(matrix, dtype=np.float32))
    if tuple(tensor.shape) != (charts, sources):
        raise ConfigError(f"{what}: relation matrix of shape {tuple(tensor.shape)}, expected ({charts}, {sources})")
    return nn.Parameter(tensor.clone())


def read_keypoint_classifier(path: str, names: Sequence[str] = ("kpt_weight", "kpt_bias")) -> Dict[str, np.ndarray]:
    """The float32 arrays ``names`` of a keypoint classifier file (KPT_CLASSIFIER_WEIGHT_DIR): an npz written by
    ``export_keypoint_classifier`` or an official pickle, read with the restricted unpickler (arrays only).
    KTM v1's holds "kpt_weight" (C, K, 4, 4) and "kpt_bias" (K,)."""
    if not os.path.isfile(path):
        raise CheckpointError(f"{KPT_CLASSIFIER_KEY}: {path}: keypoint classifier file not found")
    if path.endswith(".npz"):
        with np.load(path, allow_pickle=False) as stored:
            data = {name: stored[name] for name in stored.files}
    else:
        data = load_safe_pickle(path)
    if not isinstance(data, dict) or not set(names) <= set(data):
        raise CheckpointError(f"{KPT_CLASSIFIER_KEY}: {path}: expected arrays {', '.join(map(repr, names))}")
    return {name: np.asarray(data[name], dtype=np.float32) for name in names}


class CachedKernel(nn.Module):
    """A module whose ``generate_kernel(*inputs)`` does not depend on the image: ``kernel(*inputs)`` computes
    it in training (every call) and, in eval mode, once, until train(), a state-dict load or a device move."""

    def __init__(self) -> None:
        super().__init__()
        self._cached_kernel: Optional[Tensor] = None

    def generate_kernel(self, *inputs: Tensor) -> Tensor:
        """The generated kernel (subclasses)."""
        raise NotImplementedError

    def kernel(self, *inputs: Tensor) -> Tensor:
        """The generated kernel, cached in eval mode (module docstring)."""
        if self.training:
            return self.generate_kernel(*inputs)
        if self._cached_kernel is None:
            with torch.no_grad():
                self._cached_kernel = self.generate_kernel(*inputs)
        return self._cached_kernel

    def train(self, mode: bool = True) -> "CachedKernel":
        """Switch mode; forget the cached kernel."""
        self._cached_kernel = None
        return super().train(mode)

    def _load_from_state_dict(self, *args, **kwargs) -> None:
        self._cached_kernel = None
        super()._load_from_state_dict(*args, **kwargs)

    def _apply(self, *args, **kwargs):
        self._cached_kernel = None
        return super()._apply(*args, **kwargs)


class _DirectOutputs(CachedKernel):
    """The directly predicted outputs (transposed conv x2 + bilinear x up_scale) every KTM predictor has."""

    def __init__(self, input_channels: int, num_patches: int, kernel_size: int, up_scale: int,
                 kpt_up_scale: int) -> None:
        super().__init__()
        self.input_channels = input_channels
        self.kernel_size = kernel_size
        self.charts = num_patches + 1
        self.up_scale = up_scale
        self.kpt_up_scale = kpt_up_scale

    def _deconv(self, out_channels: int) -> nn.ConvTranspose2d:
        layer = keypoint_deconv(self.input_channels, out_channels, self.kernel_size)
        msra_fill_all(layer)
        return layer

    def _up(self, x: Tensor) -> Tensor:
        return upsample(x, self.up_scale)

    def _fine_segm(self, head_output: Tensor, kernel: Tensor) -> Tensor:
        """I from the generated (C, 25, k, k) kernel: transposed conv without bias, x2, then bilinear."""
        padding = self.kernel_size // 2 - 1
        return self._up(F.conv_transpose2d(head_output, kernel, stride=2, padding=padding))


class DensePoseKptRelationPredictor(_DirectOutputs):
    """KTM v1 (module docstring). ``keypoint_classifier``: {"kpt_weight", "kpt_bias"} arrays or None (then the
    classifier starts as a keypoint head's deconv would); ``relation``: the (25, K) matrix."""

    def __init__(self, input_channels: int, num_patches: int, num_keypoints: int, kernel_size: int, up_scale: int,
                 kpt_up_scale: int, relation, keypoint_classifier: Optional[Dict[str, np.ndarray]] = None) -> None:
        super().__init__(input_channels, num_patches, kernel_size, up_scale, kpt_up_scale)
        self.u_lowres = self._deconv(self.charts)
        self.v_lowres = self._deconv(self.charts)
        self.m_lowres = self._deconv(BODY_MASK_CHANNELS)
        width = input_channels * kernel_size ** 2
        self.kpt_surface_transformer = transfer_mlp(width, width)
        self.kpt_surface_transfer_matrix = relation_parameter(relation, num_keypoints, self.charts,
                                                              "MODEL.ROI_DENSEPOSE_HEAD.KPT_SURF_RELATION_DIR")
        if keypoint_classifier is None:
            source = self._deconv(num_keypoints)
            weight, bias = source.weight.detach(), source.bias.detach()
        else:
            weight, bias = (torch.as_tensor(keypoint_classifier[k]) for k in ("kpt_weight", "kpt_bias"))
            expected = (input_channels, num_keypoints, kernel_size, kernel_size)
            if tuple(weight.shape) != expected or tuple(bias.shape) != (num_keypoints,):
                raise CheckpointError(f"{KPT_CLASSIFIER_KEY}: kpt_weight {tuple(weight.shape)}"
                                      f" / kpt_bias {tuple(bias.shape)}, expected {expected} / ({num_keypoints},)")
        self.body_kpt_weight = nn.Parameter(weight.clone())
        self.body_kpt_bias = nn.Parameter(bias.clone())

    def generate_kernel(self) -> Tensor:
        """(C, 25, k, k) = reshaped MLP(R_k A_k)."""
        rows = self.kpt_surface_transformer(self.kpt_surface_transfer_matrix @ flatten_classifier(self.body_kpt_weight))
        return kernel_from_rows(rows, self.input_channels, self.kernel_size)

    def forward(self, head_output: Tensor) -> Dict[str, Tensor]:
        """(R, C, S, S) -> {"fine_segm", "u", "v", "body_mask", "keypoints"}."""
        padding = self.kernel_size // 2 - 1
        keypoints = F.conv_transpose2d(head_output, self.body_kpt_weight, self.body_kpt_bias, stride=2,
                                       padding=padding)
        return {"fine_segm": self._fine_segm(head_output, self.kernel()),
                "u": self._up(self.u_lowres(head_output)), "v": self._up(self.v_lowres(head_output)),
                "body_mask": self._up(self.m_lowres(head_output)),
                "keypoints": upsample(keypoints, self.kpt_up_scale)}


class KTNv2Predictor(_DirectOutputs):
    """KTM v2 (module docstring). ``relations``: {"kpt_surf": (25, K), "part_surf": (25, 15), "person_surf":
    (25, 6)}; ``box_dim``: the width of the box head's features (columns of the box predictor's weights)."""

    takes_box_weights = True  # the ROI heads pass the box predictor's weights to forward

    def __init__(self, input_channels: int, num_patches: int, num_keypoints: int, kernel_size: int, up_scale: int,
                 kpt_up_scale: int, box_dim: int, relations: Dict[str, object]) -> None:
        super().__init__(input_channels, num_patches, kernel_size, up_scale, kpt_up_scale)
        # Registration order of KTNv2 (state-dict order).
        self.bbox_crgk_matrix = relation_parameter(relations["person_surf"], BOX_ROWS, self.charts,
                                                   "MODEL.ROI_DENSEPOSE_HEAD.BBOX_SURF_RELATION_DIR")
        self.part_crgk_matrix = relation_parameter(relations["part_surf"], PART_CHANNELS, self.charts,
                                                   "MODEL.ROI_DENSEPOSE_HEAD.PART_SURF_RELATION_DIR")
        self.kpt_crgk_matrix = relation_parameter(relations["kpt_surf"], num_keypoints, self.charts,
                                                  "MODEL.ROI_DENSEPOSE_HEAD.KPT_SURF_RELATION_DIR")
        self.u_lowres = self._deconv(self.charts)
        self.v_lowres = self._deconv(self.charts)
        self.ann_index_lowres = self._deconv(PART_CHANNELS)
        self.k_lowres = self._deconv(num_keypoints)
        self.m_lowres = self._deconv(BODY_MASK_CHANNELS)
        width = input_channels * kernel_size ** 2
        self.box_dim = box_dim
        self.parameter_transformer = transfer_mlp(2 * width + box_dim, width)

    def generate_kernel(self, box_weights: Tensor) -> Tensor:
        """(C, 25, k, k) = reshaped MLP([R_k A_k, R_b B, R_p A_p]) for the (6, D) box weights B."""
        if tuple(box_weights.shape) != (BOX_ROWS, self.box_dim):
            raise ConfigError(f"KTNv2Predictor: box predictor weights of shape {tuple(box_weights.shape)}, expected "
                              f"({BOX_ROWS}, {self.box_dim}) (one person class, class-specific box regression)")
        sources = torch.cat([self.kpt_crgk_matrix @ flatten_classifier(self.k_lowres.weight),
                             self.bbox_crgk_matrix @ box_weights.detach(),
                             self.part_crgk_matrix @ flatten_classifier(self.ann_index_lowres.weight)], dim=1)
        return kernel_from_rows(self.parameter_transformer(sources), self.input_channels, self.kernel_size)

    def forward(self, head_output: Tensor, box_weights: Tensor) -> Dict[str, Tensor]:
        """(R, C, S, S) and the box predictor's (6, D) weights -> {"body_mask", "fine_segm", "u", "v",
        "coarse_segm" (15 parts), "keypoints"}."""
        return {"body_mask": self._up(self.m_lowres(head_output)),
                "fine_segm": self._fine_segm(head_output, self.kernel(box_weights)),
                "u": self._up(self.u_lowres(head_output)), "v": self._up(self.v_lowres(head_output)),
                "coarse_segm": self._up(self.ann_index_lowres(head_output)),
                "keypoints": upsample(self.k_lowres(head_output), self.kpt_up_scale)}


class KeypointDeconvPredictor(nn.Module):
    """Keypoint pre-training's classifier on the DensePose head (KTN's DensePoseKeypointsPredictor with
    KPT_UP_SCALE 2): ``predictor.0`` transposed conv x2 to K, then bilinear x ``kpt_up_scale``."""

    def __init__(self, input_channels: int, num_keypoints: int, kernel_size: int, kpt_up_scale: int) -> None:
        super().__init__()
        self.predictor = nn.Sequential(keypoint_deconv(input_channels, num_keypoints, kernel_size))
        msra_fill_all(self)
        self.kpt_up_scale = kpt_up_scale

    def forward(self, head_output: Tensor) -> Dict[str, Tensor]:
        """(R, C, S, S) -> {"keypoints": (R, K, 2 S x kpt_up_scale, ...)}."""
        return {"keypoints": upsample(self.predictor(head_output), self.kpt_up_scale)}


def _kpt_relation_predictor(cfg: CfgNode, input_channels: int) -> DensePoseKptRelationPredictor:
    head = cfg.MODEL.ROI_DENSEPOSE_HEAD
    charts, keypoints = head.NUM_PATCHES + 1, cfg.MODEL.ROI_KEYPOINT_HEAD.NUM_KEYPOINTS
    relation = relation_matrix(head.KPT_SURF_RELATION_DIR, "kpt_surf", keypoints, charts,
                               "MODEL.ROI_DENSEPOSE_HEAD.KPT_SURF_RELATION_DIR")
    classifier = read_keypoint_classifier(head.KPT_CLASSIFIER_WEIGHT_DIR) if head.KPT_CLASSIFIER_WEIGHT_DIR else None
    return DensePoseKptRelationPredictor(input_channels, head.NUM_PATCHES, keypoints, head.DECONV_KERNEL,
                                         head.UP_SCALE, head.KPT_UP_SCALE, relation, classifier)


def _ktnv2_predictor(cfg: CfgNode, input_channels: int) -> KTNv2Predictor:
    head = cfg.MODEL.ROI_DENSEPOSE_HEAD
    charts, keypoints = head.NUM_PATCHES + 1, cfg.MODEL.ROI_KEYPOINT_HEAD.NUM_KEYPOINTS
    sources = {"kpt_surf": keypoints, "part_surf": PART_CHANNELS, "person_surf": BOX_ROWS}
    relations = {name: relation_matrix(head[key], name, sources[name], charts, f"MODEL.ROI_DENSEPOSE_HEAD.{key}")
                 for name, key in RELATION_GRAPHS.items()}
    return KTNv2Predictor(input_channels, head.NUM_PATCHES, keypoints, head.DECONV_KERNEL, head.UP_SCALE,
                          head.KPT_UP_SCALE, cfg.MODEL.ROI_BOX_HEAD.FC_DIM, relations)


def _retired_predictor(cfg: CfgNode, input_channels: int) -> nn.Module:
    raise ConfigError("MODEL.ROI_DENSEPOSE_HEAD.PREDICTOR: DensePoseKTNv2PredictorV3 (named by KTNv2's HRFPN file) "
                      "no longer exists in KTNv2 and needs a keypoint-classifier file its config does not set; "
                      "use KTNv2Predictor (experiments/densepose_coco/densepose_rcnn_HRFPN_w32_KTNv2.yaml)")


DENSEPOSE_PREDICTOR_REGISTRY.register("DensePoseKptRelationPredictor", _kpt_relation_predictor)
DENSEPOSE_PREDICTOR_REGISTRY.register("KTNv2Predictor", _ktnv2_predictor)
DENSEPOSE_PREDICTOR_REGISTRY.register("DensePoseKTNv2PredictorV3", _retired_predictor)
