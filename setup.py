"""Install posekit (package dir lib/) and build its compiled ops extension ``posekit._C``.

CPU kernels are always built. CUDA kernels are added when a CUDA toolkit and a CUDA build of torch are
present, or when FORCE_CUDA=1; TORCH_CUDA_ARCH_LIST picks the architectures as usual.
"""
import glob
import os
import platform
from typing import List

from setuptools import find_packages, setup
from torch.utils.cpp_extension import CUDA_HOME, BuildExtension, CppExtension, CUDAExtension

import torch

CSRC = os.path.join("lib", "posekit", "ops", "csrc")


def _with_cuda() -> bool:
    if os.environ.get("FORCE_CUDA", "0") == "1":
        return True
    return torch.version.cuda is not None and CUDA_HOME is not None


def _cpu_arch_flags() -> List[str]:
    """-march for the CPU kernels: the build machine's own vector instructions (AVX2 and FMA where present:
    DEKR's deformable convolution, forward and backward, ran about a quarter faster than with x86-64's SSE2),
    since the extension is built where it runs; POSEKIT_CPU_ARCH=x86-64 (or another -march value) for a
    portable build."""
    default = "native" if platform.machine().lower() in ("x86_64", "amd64") else ""
    arch = os.environ.get("POSEKIT_CPU_ARCH", default)
    return [f"-march={arch}"] if arch and os.name != "nt" else []


def _extension():
    sources = sorted(glob.glob(os.path.join(CSRC, "*.cpp")) + glob.glob(os.path.join(CSRC, "cpu", "*.cpp")))
    # -fno-trapping-math (not -ffast-math: results are unchanged) lets GCC vectorize loops with selects.
    extra = {"cxx": ["-O3", "-fno-trapping-math"] + _cpu_arch_flags()}
    if os.name != "nt":
        extra["cxx"].append("-fopenmp")
    if not _with_cuda():
        return CppExtension("posekit._C", sources, extra_compile_args=extra, extra_link_args=["-fopenmp"])
    extra["nvcc"] = ["-O3", "--expt-relaxed-constexpr", "-DWITH_CUDA"]
    extra["cxx"].append("-DWITH_CUDA")
    sources += sorted(glob.glob(os.path.join(CSRC, "cuda", "*.cu")))
    return CUDAExtension("posekit._C", sources, extra_compile_args=extra, extra_link_args=["-fopenmp"])


setup(
    name="posekit",
    version="0.1.0",
    description="Multi-person human pose: DEKR, DensePose R-CNN (KTN, AMANet) and LCR-Net in one library",
    package_dir={"": "lib"},
    packages=find_packages("lib"),
    python_requires=">=3.9",
    ext_modules=[_extension()],
    cmdclass={"build_ext": BuildExtension.with_options(use_ninja=True)},
    zip_safe=False,
)
