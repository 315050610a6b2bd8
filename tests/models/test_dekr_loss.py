"""DekrLoss on hand-made inputs with hand-computed values (dekr.md 6.6)."""
import pytest
import torch

from posekit.config import get_cfg
from posekit.models.dekr.loss import DekrLoss
from posekit.utils.errors import ConfigError


def make_loss(**loss):
    cfg = get_cfg()
    for key, value in loss.items():
        setattr(cfg.LOSS, key, value)
    criterion = DekrLoss(cfg)
    return lambda *args: tuple(criterion(*args).get(name) for name in ("loss_heatmap", "loss_offset"))


def heatmap_inputs():
    # Batch 1, 1 channel, 2x2: errors 1, -2, 0.5, 0 with mask 1, 0.1, 0, 1.
    pred = torch.tensor([[[[1.0, 0.0], [0.5, 0.3]]]])
    target = torch.tensor([[[[0.0, 2.0], [0.0, 0.3]]]])
    mask = torch.tensor([[[[1.0, 0.1], [0.0, 1.0]]]])
    return pred, target, mask


def offset_inputs():
    # 2 channels x 1 x 2: errors 0.05 (< 1/9), 1.0, 0.3, 0 with weights 0.5, 0.25, 0, 0 (2 positives).
    pred = torch.tensor([[[[0.05, 1.0]], [[0.3, 2.0]]]])
    target = torch.tensor([[[[0.0, 0.0]], [[0.0, 2.0]]]])
    weight = torch.tensor([[[[0.5, 0.25]], [[0.0, 0.0]]]])
    return pred, target, weight


def test_heatmap_and_offset_values():
    loss = make_loss(OFFSETS_LOSS_FACTOR=0.03, HEATMAPS_LOSS_FACTOR=2.0)
    heatmap, offset = loss(heatmap_inputs()[0], offset_inputs()[0], *heatmap_inputs()[1:], *offset_inputs()[1:])
    # Heatmap: (1*1 + 4*0.1 + 0.25*0 + 0) / 4 elements = 0.35, times 2.
    assert heatmap.item() == pytest.approx(0.7, rel=1e-6)
    # Offset: 0.5 * (0.5 * 0.05^2 * 9) + 0.25 * (1 - 1/18) = 0.005625 + 0.2361111 over 2 positives, x 0.03.
    assert offset.item() == pytest.approx((0.005625 + 0.25 * (1 - 1 / 18)) / 2 * 0.03, rel=1e-6)


def test_no_positive_offset_weights_divides_by_one():
    pred, target, _ = offset_inputs()
    _, offset = make_loss()(*heatmap_inputs()[:1], pred, *heatmap_inputs()[1:], target, torch.zeros_like(pred))
    assert offset.item() == 0


def test_both_losses_off_is_a_config_error():
    with pytest.raises(ConfigError, match="nothing to train"):
        make_loss(WITH_HEATMAPS_LOSS=False, WITH_OFFSETS_LOSS=False)


def test_switched_off_losses_are_left_out():
    heatmap, offset = make_loss(WITH_HEATMAPS_LOSS=False)(heatmap_inputs()[0], offset_inputs()[0],
                                                           *heatmap_inputs()[1:], *offset_inputs()[1:])
    assert heatmap is None and offset is not None
    heatmap, offset = make_loss(WITH_OFFSETS_LOSS=False)(heatmap_inputs()[0], offset_inputs()[0],
                                                          *heatmap_inputs()[1:], *offset_inputs()[1:])
    assert offset is None and heatmap is not None


def test_half_precision_predictions_give_float32_losses_and_gradients():
    pred_heatmap = (heatmap_inputs()[0] * 300).to(torch.bfloat16).requires_grad_()
    pred_offset = offset_inputs()[0].to(torch.bfloat16).requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        heatmap, offset = make_loss()(pred_heatmap, pred_offset, *heatmap_inputs()[1:], *offset_inputs()[1:])
    assert heatmap.dtype == offset.dtype == torch.float32
    # 300^2 = 90000 survives; errors 300, -2, 150, 90-0.3 weighted 1, 0.1, 0, 1.
    expected = (300.0 ** 2 + 0.1 * 4 + (90.0 - 0.3) ** 2) / 4
    assert heatmap.item() == pytest.approx(expected, rel=1e-2)
    (heatmap + offset).backward()
    assert torch.isfinite(pred_heatmap.grad.float()).all()


def test_shape_mismatch_is_refused():
    pred, target, mask = heatmap_inputs()
    with pytest.raises(ValueError, match="heatmap loss"):
        make_loss()(pred, offset_inputs()[0], target[..., :1], mask, *offset_inputs()[1:])
