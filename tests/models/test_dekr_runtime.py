"""The DEKR network under torch.compile, channels_last memory format and bf16 autocast (CPU)."""
import pytest
import torch

from posekit.models import build_model


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.float() - b.float()).norm() / b.float().norm()).item()


@pytest.fixture
def image():
    torch.manual_seed(1)
    return torch.randn(1, 3, 64, 64)


@pytest.fixture
def reference(tiny_model, image):
    with torch.no_grad():
        return tiny_model(image)


def test_channels_last_matches(tiny_model, image, reference):
    model = tiny_model.to(memory_format=torch.channels_last)
    with torch.no_grad():
        outputs = model(image.to(memory_format=torch.channels_last))
    for out, ref in zip(outputs, reference):
        torch.testing.assert_close(out, ref, atol=1e-4, rtol=1e-4)


def test_bf16_autocast_is_close(tiny_model, image, reference):
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        outputs = tiny_model(image)
    for out, ref in zip(outputs, reference):
        assert out.shape == ref.shape
        assert relative_error(out, ref) < 0.05


def test_torch_compile_matches(experiment_cfg):
    # One keypoint and one stage keep inductor's compile time (the test's whole cost) to about a minute.
    cfg = experiment_cfg("samples/dekr_tiny_coco.yaml", "DATASET.NUM_JOINTS", "1", "MODEL.NUM_JOINTS", "1",
                         "MODEL.SPEC.STAGES.NUM_STAGES", "1")
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    image = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        reference = model(image)
    try:
        with torch.no_grad():
            outputs = torch.compile(model)(image)
    except Exception as err:  # only a missing C++ toolchain for inductor is an acceptable reason to skip
        if "C++ compile" in str(err) or "CppCompileError" in type(err).__name__ or "InvalidCxxCompiler" in str(err):
            pytest.skip(f"inductor cannot compile C++ here: {type(err).__name__}")
        raise
    for out, ref in zip(outputs, reference):
        torch.testing.assert_close(out, ref, atol=1e-4, rtol=1e-4)
