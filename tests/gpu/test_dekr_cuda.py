"""The DEKR network on CUDA (fp32; bf16 autocast with channels_last) against the same weights on the CPU."""
import pytest
import torch

from posekit.config import load_cfg
from posekit.models import build_model

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.fixture(scope="module")
def cpu_and_cuda_outputs(repo_root):
    torch.manual_seed(0)
    network = build_model(load_cfg(str(repo_root / "experiments/samples/dekr_tiny_coco.yaml"))).eval()
    image = torch.randn(2, 3, 128, 96, generator=torch.Generator().manual_seed(1))
    tf32 = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False  # cuDNN's default TF32 convolutions keep only 10 mantissa bits
    with torch.no_grad():
        cpu = network(image)
        network.cuda()
        cuda = network(image.cuda())
    torch.backends.cudnn.allow_tf32 = tf32
    with torch.no_grad():
        network.to(memory_format=torch.channels_last)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            bf16 = network(image.cuda().contiguous(memory_format=torch.channels_last))
    return cpu, cuda, bf16


def relative_error(got: torch.Tensor, want: torch.Tensor) -> float:
    return ((got.double().cpu() - want.double()).abs().max() / want.double().abs().max()).item()


def test_fp32_matches_cpu(cpu_and_cuda_outputs):
    cpu, cuda, _ = cpu_and_cuda_outputs
    assert [tuple(t.shape) for t in cuda] == [tuple(t.shape) for t in cpu]
    for got, want in zip(cuda, cpu):
        assert relative_error(got, want) < 1e-4


def test_bf16_autocast_close_to_cpu(cpu_and_cuda_outputs):
    cpu, _, bf16 = cpu_and_cuda_outputs
    for got, want in zip(bf16, cpu):
        assert torch.isfinite(got).all()
        assert relative_error(got, want) < 5e-2
