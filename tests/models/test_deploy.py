"""Inference form: batch norm folding on a hand-worked layer, the whole DEKR network folded and channels_last
against its plain self, and refusals."""
import pytest
import torch
from torch import nn

from posekit.models import fold_batch_norms, prepare_for_inference


def test_hand_worked_conv_and_norm():
    # BN(2x) with mean 1, var + eps 4, gamma 4, beta 5: (2x - 1) / 2 * 4 + 5 = 4x + 3.
    conv = nn.Conv2d(1, 1, 1, bias=False)
    norm = nn.BatchNorm2d(1, eps=1.0)
    with torch.no_grad():
        conv.weight.fill_(2.0)
        norm.running_mean.fill_(1.0)
        norm.running_var.fill_(3.0)
        norm.weight.fill_(4.0)
        norm.bias.fill_(5.0)
    folded = fold_batch_norms(nn.Sequential(conv, norm).eval())
    assert isinstance(folded[1], nn.Identity)
    assert folded[0].weight.item() == 4.0 and folded[0].bias.item() == 3.0


def test_norm_not_right_after_a_conv_stays():
    model = nn.Sequential(nn.Conv2d(2, 2, 3, bias=False), nn.ReLU(), nn.BatchNorm2d(2)).eval()
    fold_batch_norms(model)
    assert isinstance(model[2], nn.BatchNorm2d) and model[0].bias is None


def test_norm_of_an_unknown_module_is_left_alone_whatever_its_name():
    class Unknown(nn.Module):  # runs bn1 before conv1: folding by attribute name would be wrong
        def __init__(self):
            super().__init__()
            self.conv1, self.bn1 = nn.Conv2d(2, 2, 1, bias=False), nn.BatchNorm2d(2)

    model = fold_batch_norms(Unknown().eval())
    assert isinstance(model.bn1, nn.BatchNorm2d) and model.conv1.bias is None


def test_training_model_is_refused():
    with pytest.raises(ValueError, match="eval mode"):
        fold_batch_norms(nn.Sequential(nn.Conv2d(2, 2, 3), nn.BatchNorm2d(2)))


@pytest.fixture
def tiny_dekr_with_statistics(tiny_model):
    """The tiny DEKR with random (non-trivial) batch-norm statistics and affine parameters, in float64
    (a fresh one per test: folding changes it in place)."""
    model = tiny_model.double()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.5, 0.5)
    return model


def test_folded_dekr_computes_the_same_function(tiny_dekr_with_statistics):
    model = tiny_dekr_with_statistics
    norms = sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    image = torch.randn(2, 3, 64, 96, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    with torch.no_grad():
        want = model(image)
        identities_before = sum(isinstance(m, nn.Identity) for m in model.modules())
        folded = fold_batch_norms(model)
        got = folded(image)
    assert norms > 0 and not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    assert sum(isinstance(m, nn.Identity) for m in folded.modules()) - identities_before == norms
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)


def test_inference_form_is_channels_last_and_the_same_function(tiny_model):
    model = tiny_model
    image = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        want = model(image)
        prepared = prepare_for_inference(model, torch.device("cpu"))
        got = prepared(image)
    assert all(p.is_contiguous(memory_format=torch.channels_last) for p in prepared.parameters() if p.dim() == 4)
    assert not prepared.training
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
