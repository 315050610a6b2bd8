"""DensePose R-CNN's model side (densepose.md 2.1-2.3, 2.5): detectron2's names, output sizes, chart results."""
from pathlib import Path

import pytest
import torch

from posekit.config import load_cfg
from posekit.models import build_model
from posekit.models.densepose import DensePoseChartPredictor, DensePoseDeepLabHead, chart_result
from posekit.structures import Instances
from posekit.utils.errors import ConfigError

TINY = str(Path(__file__).resolve().parents[2] / "experiments" / "samples" / "detector_tiny_coco.yaml")
# The tiny detector with a narrow DensePose branch (FPN width 32, so GroupNorm(32) fits).
DENSEPOSE = ["FAMILY", "densepose", "MODEL.ROI_HEADS.NAME", "DensePoseROIHeads",
             "MODEL.ROI_DENSEPOSE_HEAD.NAME", "DensePoseV1ConvXHead", "MODEL.ROI_DENSEPOSE_HEAD.CONV_HEAD_DIM", "32",
             "MODEL.ROI_DENSEPOSE_HEAD.DECODER_CONV_DIMS", "32", "MODEL.ROI_DENSEPOSE_HEAD.DECODER_NUM_CLASSES", "32",
             "MODEL.ROI_DENSEPOSE_HEAD.POOLER_TYPE", "ROIAlign"]
LEGACY = ["MODEL.ROI_DENSEPOSE_HEAD.DECODER_ON", "False", "MODEL.ROI_DENSEPOSE_HEAD.POOLER_RESOLUTION", "14",
          "MODEL.ROI_DENSEPOSE_HEAD.NUM_COARSE_SEGM_CHANNELS", "15"]


def tiny_densepose(*opts, seed=0):
    torch.manual_seed(seed)
    return build_model(load_cfg(TINY, DENSEPOSE + list(opts)), is_train=False).eval()


def test_parameter_names_are_detectron2_densepose_ones():
    names = set(tiny_densepose().state_dict())
    expected = {f"roi_heads.densepose_head.body_conv_fcn{k}.{p}" for k in range(1, 9) for p in ("weight", "bias")}
    expected |= {f"roi_heads.densepose_predictor.{layer}.{p}" for p in ("weight", "bias")
                 for layer in ("ann_index_lowres", "index_uv_lowres", "u_lowres", "v_lowres")}
    # Panoptic-FPN decoder: 1, 1, 2, 3 conv blocks for P2..P5; upsampling layers sit between them.
    expected |= {f"roi_heads.decoder.{block}.{p}" for p in ("weight", "bias")
                 for block in ("p2.0", "p3.0", "p4.0", "p4.2", "p5.0", "p5.2", "p5.4", "predictor")}
    branch = {name for name in names if "densepose" in name or "decoder" in name}
    assert branch == expected
    assert "roi_heads.densepose_head.body_conv_fcn9.weight" not in names
    assert "roi_heads.box_head.fc1.weight" in names and "roi_heads.box_predictor.cls_score.weight" in names


def test_parameter_shapes_and_the_legacy_variant():
    state = tiny_densepose().state_dict()
    assert state["roi_heads.densepose_head.body_conv_fcn1.weight"].shape == (32, 32, 3, 3)
    # ConvTranspose2d weights are (in, out, k, k): S has 2 channels, I / U / V 24 charts + background.
    assert state["roi_heads.densepose_predictor.ann_index_lowres.weight"].shape == (32, 2, 4, 4)
    assert state["roi_heads.densepose_predictor.u_lowres.weight"].shape == (32, 25, 4, 4)
    legacy = tiny_densepose(*LEGACY).state_dict()
    assert legacy["roi_heads.densepose_predictor.ann_index_lowres.weight"].shape == (32, 15, 4, 4)
    assert not any(name.startswith("roi_heads.decoder.") for name in legacy)


def test_deeplab_head_names_follow_detectron2():
    names = set(tiny_densepose("MODEL.ROI_DENSEPOSE_HEAD.NAME", "DensePoseDeepLabHead",
                               "MODEL.ROI_DENSEPOSE_HEAD.NUM_STACKED_CONVS", "2",
                               "MODEL.ROI_DENSEPOSE_HEAD.DEEPLAB.NONLOCAL_ON", "1").state_dict())
    prefix = "roi_heads.densepose_head."
    for name in ["ASPP.convs.0.0.weight", "ASPP.convs.0.1.weight", "ASPP.convs.3.0.weight", "ASPP.convs.4.1.weight",
                 "ASPP.convs.4.2.bias", "ASPP.project.0.weight", "NLBlock.g.0.weight", "NLBlock.theta.weight",
                 "NLBlock.phi.0.weight", "NLBlock.W.0.weight", "NLBlock.W.1.weight", "body_conv_fcn1.weight",
                 "body_conv_fcn1.norm.weight", "body_conv_fcn2.norm.bias"]:
        assert prefix + name in names, name
    # GroupNorm replaces the conv biases.
    assert prefix + "body_conv_fcn1.bias" not in names and prefix + "ASPP.convs.0.0.bias" not in names


def test_deeplab_head_dilations_and_an_identity_non_local_block_at_initialisation():
    head = DensePoseDeepLabHead(32, 32, 3, 1, "GN", use_nonlocal=True)
    assert [branch[0].dilation for branch in head.ASPP.convs[1:4]] == [(6, 6), (12, 12), (56, 56)]
    x = torch.randn(2, 32, 8, 8)
    # The block's output GroupNorm starts at zero scale and shift, so it adds nothing.
    assert torch.equal(head.NLBlock(x), x)
    assert head(x).shape == (2, 32, 8, 8)


@pytest.mark.parametrize("resolution, up_scale, expected", [(28, 2, 112), (14, 2, 56), (14, 1, 28), (7, 4, 56)])
def test_predictor_output_sizes(resolution, up_scale, expected):
    # Kernel 4, stride 2, padding 1: (R - 1) * 2 - 2 + 4 = 2R, then x up_scale.
    predictor = DensePoseChartPredictor(8, 2, 24, 4, up_scale)
    outputs = predictor(torch.zeros(3, 8, resolution, resolution))
    assert {key: tuple(v.shape) for key, v in outputs.items()} == {
        "coarse_segm": (3, 2, expected, expected), "fine_segm": (3, 25, expected, expected),
        "u": (3, 25, expected, expected), "v": (3, 25, expected, expected)}


def test_predictor_on_a_single_pixel_is_the_central_kernel_window():
    predictor = DensePoseChartPredictor(1, 2, 24, 4, up_scale=1).double()
    outputs = predictor(torch.full((1, 1, 1, 1), 2.0, dtype=torch.float64))
    # One input pixel at stride 2, padding 1: output (i, j) takes kernel tap (i + 1, j + 1).
    weight, bias = predictor.u_lowres.weight[0], predictor.u_lowres.bias
    expected = 2.0 * weight[:, 1:3, 1:3] + bias[:, None, None]
    assert torch.allclose(outputs["u"][0], expected)


def test_rcnn_star_predictor_has_a_body_mask_instead_of_s():
    predictor = DensePoseChartPredictor(8, 0, 24, 4, 2, body_mask=True)
    names = {name.split(".")[0] for name in predictor.state_dict()}
    assert names == {"index_uv_lowres", "u_lowres", "v_lowres", "m_lowres"}
    assert predictor(torch.zeros(1, 8, 28, 28))["body_mask"].shape == (1, 2, 112, 112)


def _maps(values):
    return torch.tensor(values, dtype=torch.float32)


def test_chart_result_on_a_two_by_two_box():
    # Box 0.5..2.9 x 1.2..3.7: w = int(2.4) = 2, h = int(2.5) = 2, so a 2x2 map is resized to itself.
    box = torch.tensor([0.5, 1.2, 2.9, 3.7])
    coarse = _maps([[[1, 0], [0, 0]], [[0, 2], [3, 4]]])  # foreground except the top-left pixel
    fine = torch.zeros(25, 2, 2)
    fine[3, 0, 0] = fine[7, 0, 1] = fine[24, 1, 1] = 5.0  # bottom-left: all equal -> chart 0 (background)
    u, v = torch.zeros(25, 2, 2), torch.zeros(25, 2, 2)
    u[7, 0, 1], v[7, 0, 1] = 1.5, 0.25  # U clamped to 1
    u[24, 1, 1], v[24, 1, 1] = 0.5, -0.2  # V clamped to 0
    u[3, 0, 0] = 0.9  # chart 3 is not used: the pixel is background in S
    result = chart_result(coarse, fine, u, v, box)
    assert result.labels.dtype == torch.uint8 and result.uv.dtype == torch.float32
    assert result.labels.tolist() == [[0, 7], [0, 24]]
    assert result.uv.tolist() == [[[0.0, 1.0], [0.0, 0.5]], [[0.0, 0.25], [0.0, 0.0]]]
    assert result.box_xywh == (0, 1, 2, 2)


def test_chart_result_of_a_sub_pixel_box_is_one_pixel_averaging_the_map():
    # (w, h) = (max(int(0.7), 1), max(int(0.3), 1)) = (1, 1); bilinear 2x2 -> 1x1 samples the centre: the mean.
    coarse = _maps([[[0, 0], [0, 0]], [[1, 1], [1, -3]]])  # mean 0 vs 0: argmax 0 -> background
    fine = torch.zeros(25, 2, 2)
    result = chart_result(coarse, fine, fine, fine, torch.tensor([10.0, 20.0, 10.7, 20.3]))
    assert result.labels.tolist() == [[0]] and result.uv.shape == (2, 1, 1)
    coarse[1, 1, 1] = 1.0  # mean 1 > 0: foreground
    fine[5] = _maps([[2, 2], [2, 2]])
    u = torch.zeros(25, 2, 2)
    u[5] = _maps([[0.1, 0.3], [0.5, 0.7]])
    result = chart_result(coarse, fine, u, u, torch.tensor([10.0, 20.0, 10.7, 20.3]))
    assert result.labels.tolist() == [[5]] and torch.allclose(result.uv, torch.full((2, 1, 1), 0.4))


def random_image(seed=0, size=(3, 128, 160)):
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, size, dtype=torch.uint8, generator=generator)


@pytest.mark.parametrize("opts, size, segm", [([], 112, 2), (LEGACY, 56, 15)], ids=["decoder", "legacy"])
def test_tiny_model_inference_attaches_the_outputs_to_detections(opts, size, segm):
    model = tiny_densepose(*opts)
    with torch.no_grad():
        instances = model([{"image": random_image(), "height": 256, "width": 320}])[0]["instances"]
    count = len(instances)
    assert count > 0
    assert instances.pred_densepose_coarse_segm.shape == (count, segm, size, size)
    for name in ("fine_segm", "u", "v"):
        assert instances.get("pred_densepose_" + name).shape == (count, 25, size, size)
    box = instances.pred_boxes[0]
    result = chart_result(instances.pred_densepose_coarse_segm[0], instances.pred_densepose_fine_segm[0],
                          instances.pred_densepose_u[0], instances.pred_densepose_v[0], box)
    width, height = max(int(box[2] - box[0]), 1), max(int(box[3] - box[1]), 1)
    assert result.labels.shape == (height, width) and result.uv.shape == (2, height, width)


def test_no_detections_give_empty_fields():
    model = tiny_densepose("MODEL.ROI_HEADS.SCORE_THRESH_TEST", "1.0")
    with torch.no_grad():
        instances = model([{"image": random_image(1)}])[0]["instances"]
    assert len(instances) == 0 and instances.pred_densepose_u.shape == (0, 25, 112, 112)


def test_ground_truth_without_densepose_gives_zero_densepose_losses_reaching_every_parameter():
    model = tiny_densepose().train()
    target = Instances((128, 160), gt_boxes=torch.tensor([[10.0, 20.0, 90.0, 120.0]]), gt_classes=torch.tensor([0]))
    losses = model([{"image": random_image(2), "instances": target}])
    densepose = {name for name in losses if name.startswith("loss_densepose_")}
    assert set(losses) - densepose == {"loss_rpn_cls", "loss_rpn_loc", "loss_cls", "loss_box_reg"}
    assert densepose == {"loss_densepose_U", "loss_densepose_V", "loss_densepose_I", "loss_densepose_S"}
    assert all(losses[name].item() == 0 for name in densepose)
    sum(losses[name] for name in densepose).backward()
    # DistributedDataParallel needs a gradient (here zero) on every parameter of the branch in every step.
    predictor = model.roi_heads.densepose_predictor
    assert all(p.grad is not None and not p.grad.any() for p in predictor.parameters())


def test_unsupported_settings_name_their_keys():
    with pytest.raises(ConfigError, match="MODEL.ROI_DENSEPOSE_HEAD.UV_CONFIDENCE.ENABLED"):
        tiny_densepose("MODEL.ROI_DENSEPOSE_HEAD.UV_CONFIDENCE.ENABLED", "True")
    with pytest.raises(ConfigError, match="MODEL.ROI_DENSEPOSE_HEAD.NAME"):
        tiny_densepose("MODEL.ROI_DENSEPOSE_HEAD.NAME", "DensePoseNoSuchHead")
    with pytest.raises(ConfigError, match="MODEL.ROI_DENSEPOSE_HEAD.PREDICTOR_NAME"):
        tiny_densepose("MODEL.ROI_DENSEPOSE_HEAD.PREDICTOR_NAME", "DensePoseEmbeddingPredictor")
