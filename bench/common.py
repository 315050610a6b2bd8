"""What the benchmark scripts share: synchronised timing, a description of the machine, RESULTS.md sections."""
import argparse
import datetime
import itertools
import os
import platform
import re
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Tuple

import torch
from torch import nn

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
RESULTS_TITLE = "# Benchmark results\n"
LAYOUTS = (torch.contiguous_format, torch.channels_last)


def device_parser(description: str) -> argparse.ArgumentParser:
    """The arguments of the model benches: --devices, --repeats and --write."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--devices", nargs="+", choices=["cpu", "cuda"], default=["cpu"])
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per row (after one warm-up)")
    parser.add_argument("--write", action="store_true", help="replace the devices' sections of bench/RESULTS.md")
    return parser


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work, so that wall-clock time covers it."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def timed(run: Callable[[], object], device: torch.device) -> float:
    """Seconds one synchronised call of ``run`` takes."""
    synchronize(device)
    start = time.perf_counter()
    run()
    synchronize(device)
    return time.perf_counter() - start


def median_seconds(run: Callable[[], object], device: torch.device, repeats: int, warmup: int = 1) -> float:
    """Median of ``repeats`` synchronised calls of ``run`` after ``warmup`` untimed ones."""
    for _ in range(warmup):
        run()
    return statistics.median(timed(run, device) for _ in range(repeats))


def cpu_model() -> str:
    """The CPU's marketing name from /proc/cpuinfo (platform's guess elsewhere)."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        found = re.search(r"^model name\s*:\s*(.+)$", cpuinfo.read_text(), re.MULTILINE)
        if found:
            return found.group(1).strip()
    return platform.processor() or "unknown CPU"


def machine(gpu: Optional[torch.device] = None) -> str:
    """CPU model and cores, the GPU when one is used, torch version and threads, today's date (UTC)."""
    gpu_text = f", GPU {torch.cuda.get_device_name(gpu)}" if gpu is not None else ", no GPU used"
    today = datetime.datetime.now(datetime.timezone.utc).date().isoformat()
    return (f"{cpu_model()}, {os.cpu_count()} cores{gpu_text}; torch {torch.__version__} "
            f"({torch.get_num_threads()} CPU threads); {today}")


def write_section(title: str, text: str, path: Path = RESULTS) -> None:
    """Replace (or append) the ``## title`` section of RESULTS.md, leaving the other sections alone."""
    current = path.read_text() if path.exists() else RESULTS_TITLE
    section = f"## {title}\n\n{text.rstrip()}\n"
    pattern = re.compile(rf"^## {re.escape(title)}\n.*?(?=^## |\Z)", re.MULTILINE | re.DOTALL)
    if pattern.search(current):
        updated = pattern.sub(lambda _: section + "\n", current, count=1)
    else:
        updated = current.rstrip("\n") + "\n\n" + section
    path.write_text(updated.rstrip("\n") + "\n")


def format_table(header: List[str], rows: List[List[str]]) -> str:
    """A markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


@dataclass(frozen=True)
class ConvProbe:
    """A float32 3x3 conv at one feature-map shape and layout, timed for this machine's conv throughput."""

    conv: nn.Module
    x: torch.Tensor
    macs: int

    def throughput(self, repeats: int) -> float:
        """Multiply-adds per second, median of ``repeats`` calls."""
        with torch.no_grad():
            return self.macs / median_seconds(lambda: self.conv(self.x), self.x.device, repeats)


def fastest_conv_probe(device: torch.device, batch: int, repeats: int,
                       shapes: Sequence[Tuple[int, int, int]]) -> ConvProbe:
    """The 3x3 conv of the (channels, height, width) ``shapes`` and both layouts with the most multiply-adds per
    second here: the convolution floor's throughput."""
    probes = []
    for (channels, height, width), layout in itertools.product(shapes, LAYOUTS):
        conv = nn.Conv2d(channels, channels, 3, padding=1, bias=False).to(device, memory_format=layout).eval()
        x = torch.randn(batch, channels, height, width, device=device).contiguous(memory_format=layout)
        probes.append(ConvProbe(conv, x, conv.weight.numel() * height * width * batch))
    return max(probes, key=lambda probe: probe.throughput(repeats))
