"""The DEKR network on CUDA (fp32; bf16 autocast with channels_last; CUDA graphs) against the CPU and eager runs."""
import pytest
import torch

from posekit.config import load_cfg
from posekit.inference.cuda_graph import CudaGraphNetwork
from posekit.models import build_model

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def tiny_network(repo_root):
    """The sample tiny DEKR with a fixed random initialisation, in eval mode, on the CPU."""
    torch.manual_seed(0)
    return build_model(load_cfg(str(repo_root / "experiments/samples/dekr_tiny_coco.yaml"))).eval()


@pytest.fixture(scope="module")
def cpu_and_cuda_outputs(repo_root):
    network = tiny_network(repo_root)
    image = torch.randn(2, 3, 128, 96, generator=torch.Generator().manual_seed(1))
    tf32 = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False  # cuDNN's default TF32 convolutions keep only 10 mantissa bits
    try:
        with torch.no_grad():
            cpu = network(image)
            network.cuda()
            cuda = network(image.cuda())
    finally:
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


def test_cuda_graph_replays_the_eager_network(repo_root):
    network = tiny_network(repo_root).cuda()
    graphed = CudaGraphNetwork(network)
    generator = torch.Generator().manual_seed(2)
    images = [torch.randn(shape, generator=generator).cuda() for shape in [(1, 3, 128, 96)] * 2 + [(2, 3, 64, 96)]]
    with torch.no_grad():
        want = [network(image) for image in images]
    got = [graphed(image) for image in images]  # two shapes: two graphs; the second call replays the first
    assert len(graphed._graphs) == 2
    for outputs, expected in zip(got, want):  # earlier results are not overwritten by later replays
        for a, b in zip(outputs, expected):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_cuda_graph_under_fp16_autocast_matches_eager_autocast(repo_root):
    network = tiny_network(repo_root).cuda()
    image = torch.randn(2, 3, 128, 96, generator=torch.Generator().manual_seed(3)).cuda()
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.float16):
        want = network(image.contiguous(memory_format=torch.channels_last))
    got = CudaGraphNetwork(network.to(memory_format=torch.channels_last), torch.float16)(image)
    for a, b in zip(got, want):
        assert a.dtype == b.dtype
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-3)
