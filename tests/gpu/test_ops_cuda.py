"""posekit's CUDA kernels against its CPU kernels (float64, float32, half, bfloat16) and torchvision.ops."""
import pytest
import torch

import posekit.ops as ops
from posekit.ops import reference

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

TOLERANCE = {torch.float64: 1e-10, torch.float32: 1e-4, torch.float16: 2e-2, torch.bfloat16: 1e-1}


def deform_inputs(dtype=torch.float64):
    """Inputs of a deformable convolution with stride (2, 1), padding 1 and dilation (2, 1): 5x9 outputs."""
    generator = torch.Generator().manual_seed(0)
    return {"input": torch.randn(2, 6, 11, 9, generator=generator, dtype=dtype),
            "offset": 2 * torch.randn(2, 2 * 3 * 9, 5, 9, generator=generator, dtype=dtype),
            "weight": torch.randn(4, 3, 3, 3, generator=generator, dtype=dtype),
            "bias": torch.randn(4, generator=generator, dtype=dtype),
            "mask": torch.rand(2, 3 * 9, 5, 9, generator=generator, dtype=dtype)}


def roi_inputs(dtype=torch.float64):
    generator = torch.Generator().manual_seed(1)
    features = torch.randn(2, 5, 13, 17, generator=generator, dtype=dtype)
    corner = torch.rand(40, 2, generator=generator, dtype=dtype) * 80 - 10
    size = torch.rand(40, 2, generator=generator, dtype=dtype) * 40
    index = torch.randint(0, 2, (40, 1), generator=generator).to(dtype)
    return features, torch.cat([index, corner, corner + size], dim=1)


def forward_and_grads(function, tensors, differentiable):
    """Output and the gradients of the first ``differentiable`` tensors, as float64 on the CPU."""
    leaves = [t.detach().clone().requires_grad_(i < differentiable) for i, t in enumerate(tensors)]
    out = function(*leaves)
    grad_out = torch.randn(out.shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    grads = torch.autograd.grad(out, leaves[:differentiable], grad_out.to(out))
    return [out.double().cpu()] + [g.double().cpu() for g in grads]


def rounded_to(tensors, dtype):
    """The tensors rounded to ``dtype`` and back to float64: the CPU reference sees the CUDA inputs' values."""
    return [t.to(dtype).double() for t in tensors]


def assert_all_close(got, want, tolerance):
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=tolerance, atol=tolerance * max(1.0, b.abs().max().item()))


@pytest.mark.parametrize("dtype", list(TOLERANCE))
def test_deform_conv2d_cuda_matches_cpu(dtype):
    cpu_inputs = deform_inputs()

    def run(input, offset, weight, bias, mask):
        return ops.deform_conv2d(input, offset, weight, bias, stride=(2, 1), padding=(1, 1), dilation=(2, 1),
                                 mask=mask)

    want = forward_and_grads(run, rounded_to(cpu_inputs.values(), dtype), 5)
    got = forward_and_grads(run, [t.to("cuda", dtype) for t in cpu_inputs.values()], 5)
    assert_all_close(got, want, TOLERANCE[dtype])


@pytest.mark.parametrize("dtype", list(TOLERANCE))
@pytest.mark.parametrize("aligned, sampling_ratio", [(False, -1), (True, 2), (True, -1)])
def test_roi_align_cuda_matches_cpu(dtype, aligned, sampling_ratio):
    features, rois = roi_inputs()

    def run(x, boxes):
        return ops.roi_align(x, boxes, (3, 4), 0.25, sampling_ratio, aligned)

    want = forward_and_grads(run, rounded_to([features, rois], dtype), 1)
    got = forward_and_grads(run, [features.to("cuda", dtype), rois.to("cuda", dtype)], 1)
    assert_all_close(got, want, TOLERANCE[dtype])


def test_roi_align_cuda_addresses_maps_past_2_31_elements():
    """A half-precision map of 2**31 + 2**21 elements takes the 64-bit offsets: its last channels pool, and
    take gradients, as the same channels cut out and given to the float64 pure-PyTorch reference."""
    channels, tail = 2048, 3
    features = torch.randn(1, channels, 1024, 1025, device="cuda", dtype=torch.float16)
    assert features.numel() > 2**31
    generator = torch.Generator().manual_seed(3)
    corner = torch.rand(16, 2, generator=generator) * 900
    rois = torch.cat([torch.zeros(16, 1), corner, corner + 5 + torch.rand(16, 2, generator=generator) * 100], dim=1)
    rois = rois.half()
    x = features.requires_grad_()
    got = ops.roi_align(x, rois.cuda(), 7, 1.0, 2, True)
    got[:, -tail:].float().sum().backward()
    crop = features[:, -tail:].detach().double().cpu().requires_grad_()
    want = reference.roi_align(crop, rois.double(), (7, 7), 1.0, 2, True)
    want.sum().backward()
    assert_all_close([got[:, -tail:].double().cpu(), x.grad[:, -tail:].double().cpu()], [want, crop.grad],
                     TOLERANCE[torch.float16])
    assert not x.grad[:, :-tail].any()


@pytest.mark.parametrize("count", [5, 70, 300])
def test_nms_and_oks_nms_cuda_match_cpu(count):
    generator = torch.Generator().manual_seed(count)
    corner = torch.rand(count, 2, generator=generator) * 50
    boxes = torch.cat([corner, corner + 5 + torch.rand(count, 2, generator=generator) * 20], dim=1)
    scores = torch.rand(count, generator=generator)
    assert ops.nms(boxes.cuda(), scores.cuda(), 0.4).cpu().tolist() == ops.nms(boxes, scores, 0.4).tolist()
    labels = torch.randint(0, 3, (count,), generator=generator)
    assert (ops.batched_nms(boxes.cuda(), scores.cuda(), labels.cuda(), 0.4).cpu().tolist()
            == ops.batched_nms(boxes, scores, labels, 0.4).tolist())
    keypoints = torch.cat([corner[:, None] + torch.randn(count, 17, 2, generator=generator) * 3,
                           torch.rand(count, 17, 1, generator=generator)], dim=2)
    areas = torch.rand(count, generator=generator) * 3000 + 500
    sigmas = torch.rand(17, generator=generator) * 0.1 + 0.025
    want = ops.oks_nms(keypoints, scores, areas, sigmas, 0.5).tolist()
    got = ops.oks_nms(keypoints.cuda(), scores.cuda(), areas.cuda(), sigmas.cuda(), 0.5).cpu().tolist()
    assert got == want


def test_cuda_matches_torchvision():
    torchvision_ops = pytest.importorskip("torchvision.ops")
    inputs = {k: v.float().cuda() for k, v in deform_inputs().items()}
    torch.testing.assert_close(
        ops.deform_conv2d(**inputs, stride=(2, 1), padding=(1, 1), dilation=(2, 1)),
        torchvision_ops.deform_conv2d(**inputs, stride=(2, 1), padding=(1, 1), dilation=(2, 1)),
        rtol=1e-4, atol=1e-4)
    features, rois = (t.float().cuda() for t in roi_inputs())
    for aligned in (False, True):
        torch.testing.assert_close(ops.roi_align(features, rois, 3, 0.25, -1, aligned),
                                   torchvision_ops.roi_align(features, rois, 3, 0.25, -1, aligned),
                                   rtol=1e-5, atol=1e-5)
    boxes = rois[:, 1:].contiguous()
    scores = torch.rand(len(boxes), device="cuda")
    assert ops.nms(boxes, scores, 0.5).tolist() == torchvision_ops.nms(boxes, scores, 0.5).tolist()


def test_cuda_gradients_match_torchvision():
    torchvision_ops = pytest.importorskip("torchvision.ops")

    def deform(module):
        return lambda input, offset, weight, bias, mask: module.deform_conv2d(
            input, offset, weight, bias, stride=(2, 1), padding=(1, 1), dilation=(2, 1), mask=mask)

    inputs = [t.float().cuda() for t in deform_inputs().values()]
    assert_all_close(forward_and_grads(deform(ops), inputs, 5), forward_and_grads(deform(torchvision_ops), inputs, 5),
                     1e-4)
    features, rois = (t.float().cuda() for t in roi_inputs())
    for aligned in (False, True):
        def pool(module):
            return lambda x, boxes: module.roi_align(x, boxes, 3, 0.25, -1, aligned)

        assert_all_close(forward_and_grads(pool(ops), [features, rois], 1),
                         forward_and_grads(pool(torchvision_ops), [features, rois], 1), 1e-5)
