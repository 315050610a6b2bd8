"""The ops' fake (meta) and autograd registrations: opcheck, torch.compile(fullgraph=True) and torch.export."""
import pytest
import torch

from posekit.ops import DeformConv2d, roi_align

OPS = torch.ops.posekit


def deform_args():
    generator = torch.Generator().manual_seed(0)
    return (torch.randn(1, 4, 6, 6, generator=generator, dtype=torch.float64, requires_grad=True),
            torch.randn(1, 36, 6, 6, generator=generator, dtype=torch.float64, requires_grad=True),
            torch.randn(4, 2, 3, 3, generator=generator, dtype=torch.float64, requires_grad=True),
            torch.randn(4, generator=generator, dtype=torch.float64, requires_grad=True),
            torch.rand(1, 18, 6, 6, generator=generator, dtype=torch.float64, requires_grad=True),
            [1, 1], [1, 1], [1, 1])


def roi_args():
    input = torch.randn(2, 3, 7, 8, dtype=torch.float64, requires_grad=True)
    rois = torch.tensor([[0, 0.5, 1.0, 6.0, 5.5], [1, -2.0, 3.0, 4.0, 9.0]], dtype=torch.float64)
    return input, rois, 0.5, 2, 3, -1, True


@pytest.mark.parametrize("op, args", [
    (OPS.deform_conv2d.default, deform_args()),
    (OPS.roi_align.default, roi_args()),
    (OPS.nms.default, (torch.tensor([[0, 0, 2, 2], [1, 1, 3, 3.0]]), torch.tensor([0.5, 0.6]), 0.1)),
    (OPS.oks_nms.default, (torch.rand(3, 2, 3), torch.rand(3), torch.ones(3), torch.ones(2), 0.5)),
], ids=["deform_conv2d", "roi_align", "nms", "oks_nms"])
def test_opcheck(op, args):
    torch.library.opcheck(op, args, test_utils=("test_schema", "test_faketensor", "test_autograd_registration"))


class DeformThenPool(torch.nn.Module):
    """A deformable convolution whose offsets come from a regular one, then RoIAlign of the result."""

    def __init__(self):
        super().__init__()
        self.offset = torch.nn.Conv2d(3, 18, 3, padding=1)
        self.deform = DeformConv2d(3, 4, 3, padding=1)

    def forward(self, x, rois):
        return roi_align(self.deform(x, self.offset(x)), rois, (2, 2), 0.5, 2, True)


def model_and_inputs():
    torch.manual_seed(0)
    rois = torch.tensor([[0, 1.0, 1.0, 9.0, 7.0], [0, -3.0, 2.0, 5.0, 11.0]])
    return DeformThenPool(), torch.randn(1, 3, 6, 6), rois


def test_compile_fullgraph_matches_eager_with_gradients():
    model, x, rois = model_and_inputs()
    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
    eager_out = model(x, rois)
    compiled_out = compiled(x, rois)
    torch.testing.assert_close(compiled_out, eager_out)
    eager_grads = torch.autograd.grad(eager_out.square().sum(), list(model.parameters()))
    compiled_grads = torch.autograd.grad(compiled(x, rois).square().sum(), list(model.parameters()))
    for got, want in zip(compiled_grads, eager_grads):
        torch.testing.assert_close(got, want)


def test_export_runs_the_ops():
    model, x, rois = model_and_inputs()
    exported = torch.export.export(model, (x, rois))
    targets = {str(node.target) for node in exported.graph.nodes}
    assert {"posekit.deform_conv2d.default", "posekit.roi_align.default"} <= targets
    torch.testing.assert_close(exported.module()(x, rois), model(x, rois))
