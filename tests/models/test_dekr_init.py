"""Training-time initialisation (dekr.md 3.4): official init with its quirks, and the pretrained backbone."""
import math

import pytest
import torch

from posekit.models import build_model
from posekit.models.dekr import AdaptBlock
from posekit.utils.errors import CheckpointError


@pytest.fixture
def trained_from_scratch(tiny_cfg):
    torch.manual_seed(0)
    return build_model(tiny_cfg, is_train=True)


def test_convs_normal_std_0_001_and_batch_norms_unit(trained_from_scratch):
    model = trained_from_scratch
    stage_weight = model.backbone.stage4[0].branches[3][0].conv1.weight  # 64 x 64 x 3 x 3 draws
    assert abs(stage_weight.std().item() - 0.001) < 0.0001
    assert torch.count_nonzero(model.head_heatmap[1].bias) == 0
    assert torch.count_nonzero(model.offset_final_layer[5].bias) == 0
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            assert torch.all(module.weight == 1) and torch.all(module.bias == 0)


def test_adaptive_conv_weights_keep_default_init_and_transforms_start_at_zero(trained_from_scratch):
    bound = 1 / math.sqrt(15 * 9)  # kaiming-uniform with a = sqrt(5): U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    blocks = [m for m in trained_from_scratch.modules() if isinstance(m, AdaptBlock)]
    assert len(blocks) == 34
    weights = torch.cat([b.adapt_conv.weight.flatten() for b in blocks])
    assert weights.abs().max() <= bound
    assert abs(weights.std().item() - bound / math.sqrt(3)) < 0.002
    for block in blocks:
        for conv in (block.transform_matrix_conv, block.translation_conv):
            assert torch.count_nonzero(conv.weight) == 0 and torch.count_nonzero(conv.bias) == 0


def test_no_init_at_test_time(tiny_cfg):
    torch.manual_seed(0)
    model = build_model(tiny_cfg)
    assert model.backbone.stage4[0].branches[3][0].conv1.weight.std() > 0.01  # PyTorch's default init, not N(0, 0.001)


def test_pretrained_backbone_is_loaded_by_top_level_name(tmp_path, experiment_cfg, tiny_cfg):
    torch.manual_seed(1)
    source_model = build_model(tiny_cfg)
    with torch.no_grad():  # buffers that differ from a fresh model's, so loading them is visible
        for module in source_model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_var.uniform_(0.5, 2.0)
                module.num_batches_tracked.fill_(7)
    source = source_model.state_dict()
    # An ImageNet HRNet file names the backbone's modules at the top level, as the official DEKR does.
    official = {k[len("backbone."):]: v for k, v in source.items() if k.startswith("backbone.")}
    imagenet = {k: v for k, v in official.items() if k.split(".")[0] in ("conv1", "bn1", "layer1", "stage2")}
    imagenet["classifier.weight"] = torch.ones(1000, 2048)  # a classification-head entry DEKR does not have
    path = tmp_path / "hrnet_imagenet.pth"
    torch.save(imagenet, path)

    def build(*opts):
        torch.manual_seed(0)
        return build_model(experiment_cfg("samples/dekr_tiny_coco.yaml", "MODEL.PRETRAINED", str(path), *opts),
                           is_train=True).state_dict()

    everything = build()
    for key in ("conv1.weight", "layer1.0.conv3.weight", "stage2.0.fuse_layers.1.0.0.0.weight",
                "bn1.running_var", "layer1.0.bn1.num_batches_tracked"):
        assert torch.equal(everything["backbone." + key], official[key])
    assert not torch.equal(everything["backbone.stage3.0.branches.0.0.conv1.weight"],
                           official["stage3.0.branches.0.0.conv1.weight"])

    only_conv1 = build("MODEL.SPEC.PRETRAINED_LAYERS", "['conv1']")
    assert torch.equal(only_conv1["backbone.conv1.weight"], official["conv1.weight"])
    assert not torch.equal(only_conv1["backbone.layer1.0.conv3.weight"], official["layer1.0.conv3.weight"])


def test_missing_pretrained_file_is_reported(experiment_cfg):
    cfg = experiment_cfg("samples/dekr_tiny_coco.yaml", "MODEL.PRETRAINED", "model/imagenet/nothing_here.pth")
    with pytest.raises(CheckpointError, match="nothing_here.pth"):
        build_model(cfg, is_train=True)
