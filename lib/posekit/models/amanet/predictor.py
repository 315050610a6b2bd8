"""AMANet predictors (densepose.md 4.3, 4.4, 12), with the release's parameter names.

Every predictor takes the AMA head's fused map O and its four attended paths and returns
``(main, [inter_1, inter_2])``: dicts of (R, C, Z, Z) maps at the head's resolution (no upsampling):
"coarse_segm" (S, 15 = background + 14 parts), "fine_segm" (I, 25), "u", "v" (25 each), "body_mask" (M, 2) and,
in ``main`` when the model predicts keypoints, "keypoints" (K, 17 logits, bilinear x KPT_UP_SCALE). The
intermediate dicts supervise the shallow (P2 + P3) and deep (P4 + P5) sums of the attended paths.

* ``AMAPredictor`` (AMA v1, the release's ``_DensePoseAMAPredictor``): 3x3 convs on E = ReLU(dp_emb_layer(O));
  every weight N(0, 0.001), biases 0, dp_emb_layer at PyTorch's default.
* ``RelationPartsAMAPredictor`` (the release's ``DensePoseAMAPredictor``): K from a 3x3 keypoint classifier
  loaded from KPT_CLASSIFIER_WEIGHT_DIR (whose embedding also replaces dp_emb_layer); I = conv(E; MLP(R_k W_k)).
* ``TaskTransformerAMAPredictorV2`` (AMAv2): direct heads plus an I kernel generated from the box, part (S) and
  keypoint (K) classifiers through relation matrices, a Conv1d pool and two single-head attention blocks; the
  final I is the mean of the direct and the generated one, and the generated one is the intermediate dicts' I.

Generated kernels do not depend on the image: in eval mode they are computed once (KTN's ``CachedKernel``).
Relation matrices the release leaves uninitialised (R_k of both generators) start from KPT_SURF_RELATION_DIR's
keypoint graph when given, else N(0, 0.001) like the release's other relation matrices.
"""
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from yacs.config import CfgNode

from ...utils.errors import CheckpointError, ConfigError
from ..densepose.predictor import BODY_MASK_CHANNELS, DENSEPOSE_PREDICTOR_REGISTRY
from ..detection.keypoint_head import upsample
from ..ktn.ktm import (BOX_ROWS, KPT_CLASSIFIER_KEY, LEAKY_SLOPE, PART_CHANNELS, RANDOM_RELATION_STD, CachedKernel,
                       read_keypoint_classifier, relation_matrix, transfer_mlp)
from .head import kaiming_fan_out_init

Outputs = Dict[str, Tensor]
PredictorResult = Tuple[Outputs, List[Outputs]]
KERNEL = 3  # every AMA predictor layer is a 3x3 conv
# Intermediate heads: output name -> the layer prefix of "<prefix>_inter_body_conv_fcn{1,2}".
INTER_LAYERS = {"coarse_segm": "ann_index", "fine_segm": "index_uv", "u": "u", "v": "v", "body_mask": "body_mask"}


def _conv(in_channels: int, out_channels: int) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, KERNEL, padding=KERNEL // 2)


def gaussian_init(module: nn.Module, skip: Sequence[str] = ()) -> None:
    """The release's ``gaussian_initialize_module_params``: weights N(0, 0.001), biases 0, ``skip`` untouched."""
    for name, param in module.named_parameters():
        if any(part in name for part in skip):
            continue
        if name.endswith("bias"):
            nn.init.zeros_(param)
        else:
            nn.init.normal_(param, std=RANDOM_RELATION_STD)


def path_sums(paths: Sequence[Tensor]) -> List[Tensor]:
    """The shallow (P2 + P3) and deep (P4 + P5) sums of the four attended paths."""
    if len(paths) != 4:
        raise ValueError(f"AMA predictors take the 4 attended paths, got {len(paths)}")
    return [paths[0] + paths[1], paths[2] + paths[3]]


def transferred_rows(relation: Tensor, weight: Tensor) -> Tensor:
    """relation (T, N) x the N source classifiers' conv kernels flattened as stored (N, C k k) -> (T, C k k)."""
    return relation @ weight.reshape(weight.shape[0], -1)


def keypoint_relation(path: str, num_keypoints: int, charts: int) -> nn.Parameter:
    """R_k (charts, keypoints): KPT_SURF_RELATION_DIR's graph (read as KTN reads it), else N(0, 0.001) like the
    release's other relation matrices (module docstring)."""
    if path:
        return nn.Parameter(relation_matrix(path, "kpt_surf", num_keypoints, charts,
                                            "MODEL.ROI_DENSEPOSE_HEAD.KPT_SURF_RELATION_DIR"))
    return nn.Parameter(torch.randn(charts, num_keypoints) * RANDOM_RELATION_STD)


class AMAPredictor(CachedKernel):
    """AMA v1: main S, I, U, V, M (and K with ``num_keypoints``) on E; intermediate S, I, U, V, M per path sum."""

    inter_outputs = tuple(INTER_LAYERS)

    def __init__(self, input_channels: int, num_patches: int, num_keypoints: int = 0, kpt_up_scale: int = 1) -> None:
        super().__init__()
        patches = num_patches + 1
        self.num_keypoints = num_keypoints
        self.kpt_up_scale = kpt_up_scale
        self.dp_emb_layer = nn.Conv2d(input_channels, input_channels, KERNEL, padding=KERNEL // 2)
        self.add_direct_layers(input_channels, patches)
        channels = {"coarse_segm": PART_CHANNELS, "fine_segm": patches, "u": patches, "v": patches,
                    "body_mask": BODY_MASK_CHANNELS}
        for k in range(2):
            for name in self.inter_outputs:
                self.add_module(self.inter_layer_name(name, k), _conv(input_channels, channels[name]))
        self.init_parameters()

    def add_direct_layers(self, channels: int, patches: int) -> None:
        """S, I, U, V, M (and K) 3x3 convs on the embedding."""
        self.add_segm_and_uv_layers(channels, patches)
        self.index_uv_layer = _conv(channels, patches)
        # The release wraps K in a Sequential (k_layer.0).
        self.k_layer = nn.Sequential(_conv(channels, self.num_keypoints)) if self.num_keypoints else None

    def add_segm_and_uv_layers(self, channels: int, patches: int) -> None:
        """The direct S, U, V and M 3x3 convs every AMA predictor has."""
        self.ann_index_layer = _conv(channels, PART_CHANNELS)
        self.u_layer = _conv(channels, patches)
        self.v_layer = _conv(channels, patches)
        self.m_layer = _conv(channels, BODY_MASK_CHANNELS)

    def init_parameters(self) -> None:
        """``gaussian_initialize_module_params``; the embedding keeps PyTorch's default."""
        gaussian_init(self, skip=("dp_emb_layer",))

    @staticmethod
    def inter_layer_name(output: str, index: int) -> str:
        """The release's name of intermediate head ``output`` on path sum ``index`` (0 shallow, 1 deep)."""
        return f"{INTER_LAYERS[output]}_inter_body_conv_fcn{index + 1}"

    def intermediate(self, paths: Sequence[Tensor], fine_segm: Optional[Tensor] = None) -> List[Outputs]:
        """The two intermediate dicts; ``fine_segm`` (when given) is their I instead of an I head."""
        results = []
        for k, features in enumerate(path_sums(paths)):
            outputs = {name: getattr(self, self.inter_layer_name(name, k))(features) for name in self.inter_outputs}
            if fine_segm is not None:
                outputs["fine_segm"] = fine_segm
            results.append({name: outputs[name] for name in INTER_LAYERS})
        return results

    def main_outputs(self, embedding: Tensor, box_weights: Optional[Tensor]) -> Outputs:
        """S, I, U, V, M (and K) on E."""
        main = {"coarse_segm": self.ann_index_layer(embedding), "fine_segm": self.index_uv_layer(embedding),
                "u": self.u_layer(embedding), "v": self.v_layer(embedding), "body_mask": self.m_layer(embedding)}
        if self.k_layer is not None:
            main["keypoints"] = self.k_layer(embedding)
        return main

    def forward(self, fused: Tensor, paths: Sequence[Tensor], box_weights: Optional[Tensor] = None) -> PredictorResult:
        """(main, [shallow, deep]) outputs of the head's fused map and attended paths (module docstring)."""
        embedding = F.relu(self.dp_emb_layer(fused))
        main = self.main_outputs(embedding, box_weights)
        if "keypoints" in main:
            main["keypoints"] = upsample(main["keypoints"], self.kpt_up_scale)
        return main, self.intermediate(paths, main.pop("fine_segm_transferred", None))


def load_kpt_classifier(path: str, channels: int, num_keypoints: int) -> Dict[str, Tensor]:
    """The relation-parts keypoint classifier pickle (KTN's reader): kpt_weight (K, C, 3, 3), kpt_bias (K,),
    emb_weight (C, C, 3, 3), emb_bias (C,)."""
    if not path:
        raise ConfigError(f"{KPT_CLASSIFIER_KEY} is empty: the relation-parts AMA predictor needs the keypoint "
                          f"classifier pickle (kpt_classifier.pkl with kpt_weight, kpt_bias, emb_weight, emb_bias)")
    shapes = {"kpt_weight": (num_keypoints, channels, KERNEL, KERNEL), "kpt_bias": (num_keypoints,),
              "emb_weight": (channels, channels, KERNEL, KERNEL), "emb_bias": (channels,)}
    arrays = read_keypoint_classifier(path, tuple(shapes))
    for name, shape in shapes.items():
        if arrays[name].shape != shape:
            raise CheckpointError(f"{KPT_CLASSIFIER_KEY}: {path}: expected '{name}' of shape {shape}, got "
                                  f"{arrays[name].shape}")
    return {name: torch.from_numpy(value) for name, value in arrays.items()}


class RelationPartsAMAPredictor(AMAPredictor):
    """AMA "relation parts": K from the loaded keypoint classifier, I generated from it (module docstring)."""

    def __init__(self, input_channels: int, num_patches: int, classifier: Dict[str, Tensor],
                 kpt_up_scale: int = 1, kpt_relation_path: str = "") -> None:
        # Read while the layers are built, then dropped.
        self.classifier, self.kpt_relation_path = classifier, kpt_relation_path
        super().__init__(input_channels, num_patches, classifier["kpt_weight"].shape[0], kpt_up_scale)
        del self.classifier

    def add_direct_layers(self, channels: int, patches: int) -> None:
        """S, U, V, M convs; the keypoint classifier, R_k and the kernel MLP."""
        self.add_segm_and_uv_layers(channels, patches)
        self.k_layer = None
        self.body_kpt_weight = nn.Parameter(self.classifier["kpt_weight"].clone())
        self.body_kpt_bias = nn.Parameter(self.classifier["kpt_bias"].clone())
        self.kpt_surface_transfer_matrix = keypoint_relation(self.kpt_relation_path, self.num_keypoints, patches)
        size = channels * KERNEL * KERNEL
        self.kpt_surface_transformer = transfer_mlp(size, size)

    def init_parameters(self) -> None:
        """``initialize_module_params`` but for the loaded classifier, its embedding and R_k."""
        kaiming_fan_out_init(self, skip=("body_kpt", "dp_emb_layer", "transfer_matrix"))
        with torch.no_grad():
            self.dp_emb_layer.weight.copy_(self.classifier["emb_weight"])
            self.dp_emb_layer.bias.copy_(self.classifier["emb_bias"])

    def generate_kernel(self) -> Tensor:
        """The I kernel (25, C, 3, 3): MLP(R_k flatten(W_k))."""
        rows = self.kpt_surface_transformer(transferred_rows(self.kpt_surface_transfer_matrix, self.body_kpt_weight))
        return rows.reshape(-1, *self.body_kpt_weight.shape[1:])

    def main_outputs(self, embedding: Tensor, box_weights: Optional[Tensor]) -> Outputs:
        """S, U, V, M convs; I and K through the keypoint classifier."""
        return {"coarse_segm": self.ann_index_layer(embedding),
                "fine_segm": F.conv2d(embedding, self.kernel(), padding=KERNEL // 2),
                "u": self.u_layer(embedding), "v": self.v_layer(embedding), "body_mask": self.m_layer(embedding),
                "keypoints": F.conv2d(embedding, self.body_kpt_weight, self.body_kpt_bias, padding=KERNEL // 2)}


class SingleHeadAttention(nn.Module):
    """The release's ``MultiHeadAttention(d, 1)``: LeakyReLU'd q / k / v projections, softmax(q k^T / sqrt(d)) v,
    LeakyReLU(linear_final(.)) plus the value input."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.linear_k = nn.Linear(dim, dim)
        self.linear_v = nn.Linear(dim, dim)
        self.linear_q = nn.Linear(dim, dim)
        self.linear_final = nn.Linear(dim, dim)

    def forward(self, keys: Tensor, values: Tensor, queries: Tensor) -> Tensor:
        """(L, d) keys, values and queries -> (L, d)."""
        k = F.leaky_relu(self.linear_k(keys), LEAKY_SLOPE)
        v = F.leaky_relu(self.linear_v(values), LEAKY_SLOPE)
        q = F.leaky_relu(self.linear_q(queries), LEAKY_SLOPE)
        attention = torch.softmax(q @ k.t() * k.shape[1] ** -0.5, dim=-1)
        return F.leaky_relu(self.linear_final(attention @ v), LEAKY_SLOPE) + values


class TaskTransformerAMAPredictorV2(AMAPredictor):
    """AMAv2's predictor (module docstring); ``box_weights`` = [cls_score.weight; bbox_pred.weight] (6, FC_DIM)."""

    inter_outputs = ("coarse_segm", "u", "v", "body_mask")

    def __init__(self, input_channels: int, num_patches: int, num_keypoints: int, box_weight_size: int,
                 kpt_up_scale: int = 1, kpt_relation_path: str = "") -> None:
        self.box_weight_size, self.kpt_relation_path = box_weight_size, kpt_relation_path
        super().__init__(input_channels, num_patches, num_keypoints, kpt_up_scale)

    def add_direct_layers(self, channels: int, patches: int) -> None:
        """Direct S, U, V, M, I, K convs, the three relation matrices and the kernel generator."""
        self.add_segm_and_uv_layers(channels, patches)
        self.i_layer = _conv(channels, patches)
        self.k_layer = _conv(channels, self.num_keypoints)
        size = channels * KERNEL * KERNEL
        self.bbox_surface_transfer_matrix = nn.Parameter(torch.randn(patches, BOX_ROWS) * RANDOM_RELATION_STD)
        self.bbox_surface_convertor = transfer_mlp(self.box_weight_size, size)
        self.part_surface_transfer_matrix = nn.Parameter(torch.randn(patches, PART_CHANNELS) * RANDOM_RELATION_STD)
        self.part_surface_convertor = nn.Sequential(nn.Linear(size, size), nn.LeakyReLU(LEAKY_SLOPE))
        self.kpt_surface_transfer_matrix = keypoint_relation(self.kpt_relation_path, self.num_keypoints, patches)
        self.kpt_surface_convertor = nn.Sequential(nn.Linear(size, size), nn.LeakyReLU(LEAKY_SLOPE))
        self.param_aggregator = nn.Sequential(nn.Conv1d(3 * patches, patches, 1), nn.LeakyReLU(LEAKY_SLOPE))
        self.parameter_encoder = SingleHeadAttention(size)
        self.parameter_decoder = SingleHeadAttention(size)
        self.param_predictor = nn.Linear(size, size)

    def init_parameters(self) -> None:
        """``initialize_module_params`` (the relation matrices are set in ``add_direct_layers``)."""
        kaiming_fan_out_init(self, skip=("dp_emb_layer", "transfer_matrix"))

    def generate_kernel(self, box_weights: Tensor) -> Tensor:
        """The generated I kernel (25, C, 3, 3) from the box, part (S) and keypoint (K) classifiers."""
        box = self.bbox_surface_convertor(self.bbox_surface_transfer_matrix @ box_weights)
        part = self.part_surface_convertor(transferred_rows(self.part_surface_transfer_matrix,
                                                            self.ann_index_layer.weight))
        keypoint = self.kpt_surface_convertor(transferred_rows(self.kpt_surface_transfer_matrix, self.k_layer.weight))
        pool = self.param_aggregator(torch.cat([box, part, keypoint])[None])[0]
        query = self.i_layer.weight.reshape(self.i_layer.weight.shape[0], -1)
        encoded = self.parameter_encoder(pool, pool, query)
        decoded = self.parameter_decoder(encoded, encoded, query)
        return self.param_predictor(decoded).reshape(self.i_layer.weight.shape)

    def main_outputs(self, embedding: Tensor, box_weights: Optional[Tensor]) -> Outputs:
        """Direct heads; I = the mean of the direct and the generated I (kept as ``fine_segm_transferred``)."""
        if box_weights is None:
            raise ValueError("TaskTransformerAMAPredictorV2 needs the box predictor's weights")
        transferred = F.conv2d(embedding, self.kernel(box_weights), padding=KERNEL // 2)
        return {"coarse_segm": self.ann_index_layer(embedding),
                "fine_segm": (self.i_layer(embedding) + transferred) * 0.5, "u": self.u_layer(embedding),
                "v": self.v_layer(embedding), "body_mask": self.m_layer(embedding),
                "keypoints": self.k_layer(embedding), "fine_segm_transferred": transferred}


def _ama_v1(cfg: CfgNode, input_channels: int) -> AMAPredictor:
    head = cfg.MODEL.ROI_DENSEPOSE_HEAD
    return AMAPredictor(input_channels, head.NUM_PATCHES,
                        cfg.MODEL.ROI_KEYPOINT_HEAD.NUM_KEYPOINTS if head.KPT_ON else 0, head.KPT_UP_SCALE)


def _relation_parts(cfg: CfgNode, input_channels: int) -> RelationPartsAMAPredictor:
    head = cfg.MODEL.ROI_DENSEPOSE_HEAD
    classifier = load_kpt_classifier(head.KPT_CLASSIFIER_WEIGHT_DIR, input_channels,
                                     cfg.MODEL.ROI_KEYPOINT_HEAD.NUM_KEYPOINTS)
    return RelationPartsAMAPredictor(input_channels, head.NUM_PATCHES, classifier, head.KPT_UP_SCALE,
                                     head.KPT_SURF_RELATION_DIR)


def _task_transformer_v2(cfg: CfgNode, input_channels: int) -> TaskTransformerAMAPredictorV2:
    head = cfg.MODEL.ROI_DENSEPOSE_HEAD
    return TaskTransformerAMAPredictorV2(input_channels, head.NUM_PATCHES, cfg.MODEL.ROI_KEYPOINT_HEAD.NUM_KEYPOINTS,
                                         cfg.MODEL.ROI_BOX_HEAD.FC_DIM, head.KPT_UP_SCALE, head.KPT_SURF_RELATION_DIR)


# The release's class names; "_DensePoseAMAPredictor" (AMA v1) is also what the AMA head's default means.
AMA_V1_PREDICTOR = "_DensePoseAMAPredictor"
DENSEPOSE_PREDICTOR_REGISTRY.register(AMA_V1_PREDICTOR, _ama_v1)
DENSEPOSE_PREDICTOR_REGISTRY.register("DensePoseAMAPredictor", _relation_parts)
DENSEPOSE_PREDICTOR_REGISTRY.register("TaskTransformerAMAPredictorV2", _task_transformer_v2)
