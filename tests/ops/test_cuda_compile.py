"""Every CUDA source compiles with nvcc against torch's headers (no GPU needed; skipped without nvcc)."""
import shutil
import subprocess
import sysconfig
from pathlib import Path

import pytest
import torch.utils.cpp_extension as cpp_extension

CUDA_SOURCES = sorted((Path(__file__).resolve().parents[2] / "lib/posekit/ops/csrc/cuda").glob("*.cu"))
NVCC = shutil.which("nvcc") or (cpp_extension.CUDA_HOME and shutil.which(f"{cpp_extension.CUDA_HOME}/bin/nvcc"))


@pytest.fixture(scope="module")
def stub_include(tmp_path_factory) -> Path:
    """A folder with the generated c10 header that CPU wheels of torch leave out."""
    root = tmp_path_factory.mktemp("stub_include")
    header = root / "c10" / "cuda" / "impl" / "cuda_cmake_macros.h"
    header.parent.mkdir(parents=True)
    header.write_text("#pragma once\n#define C10_CUDA_BUILD_SHARED_LIBS\n")
    return root


def test_there_are_cuda_sources():
    assert [p.name for p in CUDA_SOURCES] == ["deform_conv.cu", "nms.cu", "roi_align.cu"]


@pytest.mark.skipif(NVCC is None, reason="nvcc not found")
@pytest.mark.parametrize("source", CUDA_SOURCES, ids=lambda p: p.name)
def test_cuda_source_compiles(source: Path, stub_include: Path, tmp_path: Path):
    includes = [stub_include, *cpp_extension.include_paths(), sysconfig.get_paths()["include"]]
    command = [NVCC, "-c", str(source), "-o", str(tmp_path / "kernel.o"), "-std=c++20", "-O0",
               "-D_GLIBCXX_USE_CXX11_ABI=1", "-DWITH_CUDA", "--expt-relaxed-constexpr", "-arch=sm_90",
               *(f"-I{path}" for path in includes)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-4000:]
