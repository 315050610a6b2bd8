"""Median times of posekit's ops at the shapes DEKR and DensePose use, against the pure-PyTorch reference
and torchvision (when it imports), on CPU and, when available, CUDA.

    PYTHONPATH=lib python bench/ops.py [--devices cpu cuda] [--write] [--budget SECONDS]

--write replaces the "## Ops, CPU" and/or "## Ops, GPU" section of bench/RESULTS.md with the device's table
and the machine.
"""
import argparse
import statistics
import time
from typing import Callable, Dict, List, Optional

import torch

import posekit.ops as posekit_ops
from common import machine, synchronize, write_section
from posekit.ops import reference

try:
    import torchvision.ops as torchvision_ops
except Exception:  # torchvision is optional here; any import failure just drops its columns
    torchvision_ops = None

DEKR_BRANCHES = 17
SECTIONS = {"cpu": "Ops, CPU", "cuda": "Ops, GPU"}


def interleaved_medians(runs: Dict[str, Callable[[], None]], device: str, budget: float) -> Dict[str, float]:
    """Median wall time of each of ``runs`` after one warm-up call each. The runs take turns, so that a shared
    machine's drifting speed weighs on all of them alike: at least 3 rounds, more while the slowest run's
    total is within the budget, one when a single call of it already exceeds the budget."""
    for run in runs.values():
        run()
        synchronize(device)
    times: Dict[str, List[float]] = {name: [] for name in runs}
    for rounds in range(1, 26):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            synchronize(device)
            times[name].append(time.perf_counter() - start)
        first_call = max(t[0] for t in times.values())
        slowest_total = max(sum(t) for t in times.values())
        if first_call > budget or (rounds >= 3 and slowest_total >= budget):
            break
    return {name: statistics.median(t) for name, t in times.items()}


def deform_case(device: str, branches: int):
    """DEKR's adaptive convolution: 15 -> 15 channels, 3x3, padding 1, no bias, at 128x128, batch 1."""
    generator = torch.Generator().manual_seed(0)
    inputs = [(torch.randn(1, 15, 128, 128, generator=generator), torch.randn(1, 18, 128, 128, generator=generator),
               torch.randn(15, 15, 3, 3, generator=generator) * 0.1) for _ in range(branches)]
    return [tuple(t.to(device).requires_grad_() for t in case) for case in inputs]


def roi_case(device: str):
    """DensePose's RoIAlign: 512 boxes on a 256-channel stride-4 FPN level of an 800x1216 image."""
    generator = torch.Generator().manual_seed(1)
    features = torch.randn(1, 256, 200, 304, generator=generator)
    corner = torch.rand(512, 2, generator=generator) * torch.tensor([1216.0, 800.0]) * 0.8
    size = 16 + torch.rand(512, 2, generator=generator) * 300
    rois = torch.cat([torch.zeros(512, 1), corner, corner + size], dim=1)
    return features.to(device).requires_grad_(), rois.to(device)


def deform_runner(implementation: str, cases, backward: bool) -> Callable[[], None]:
    def call(x, offset, weight):
        if implementation == "reference":
            return reference.deform_conv2d(x, offset, weight, None, (1, 1), (1, 1), (1, 1), None)
        module = posekit_ops if implementation == "posekit" else torchvision_ops
        return module.deform_conv2d(x, offset, weight, padding=1)

    def run():
        for case in cases:
            out = call(*case)
            if backward:
                out.sum().backward()
    return run


def roi_runner(implementation: str, features, rois, size: int, backward: bool) -> Callable[[], None]:
    def run():
        if implementation == "reference":
            out = reference.roi_align(features, rois, (size, size), 0.25, 2, True)
        else:
            module = posekit_ops if implementation == "posekit" else torchvision_ops
            out = module.roi_align(features, rois, size, 0.25, 2, True)
        if backward:
            out.sum().backward()
    return run


def implementations(device: str) -> List[str]:
    names = ["posekit"] + (["reference"] if device == "cpu" else [])
    return names + (["torchvision"] if torchvision_ops is not None else [])


def measure(device: str, budget: float) -> List[Dict[str, object]]:
    """One row per (op, shape, pass): median milliseconds per implementation."""
    rows = []
    torch.set_grad_enabled(True)
    cases = {"deform_conv2d 15ch 3x3 128x128": deform_case(device, 1),
             f"deform_conv2d x{DEKR_BRANCHES} branches": deform_case(device, DEKR_BRANCHES)}
    features, rois = roi_case(device)
    for backward in (False, True):
        pass_name = "fwd+bwd" if backward else "fwd"
        for name, case in cases.items():
            times = interleaved_medians({impl: deform_runner(impl, case, backward)
                                         for impl in implementations(device)}, device, budget)
            rows.append({"op": name, "device": device, "pass": pass_name, "ms": times})
        for size in (14, 28):
            times = interleaved_medians({impl: roi_runner(impl, features, rois, size, backward)
                                         for impl in implementations(device)}, device, budget)
            rows.append({"op": f"roi_align 512 boxes 256x200x304 -> {size}x{size}", "device": device,
                         "pass": pass_name, "ms": times})
    return rows


def ratio(numerator: Optional[float], denominator: Optional[float]) -> str:
    return f"{numerator / denominator:.1f}x" if numerator and denominator else "-"


def table(rows: List[Dict[str, object]]) -> str:
    """Markdown table with the ratio columns: reference / posekit and torchvision / posekit."""
    lines = ["| op | device | pass | posekit ms | reference ms | torchvision ms | reference / posekit | "
             "torchvision / posekit |", "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        ms = {k: v * 1000 for k, v in row["ms"].items()}
        cells = [f"{ms[k]:.2f}" if k in ms else "-" for k in ("posekit", "reference", "torchvision")]
        lines.append(f"| {row['op']} | {row['device']} | {row['pass']} | " + " | ".join(cells) + " | "
                     f"{ratio(ms.get('reference'), ms['posekit'])} | {ratio(ms.get('torchvision'), ms['posekit'])} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_devices = ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]
    parser.add_argument("--devices", nargs="+", choices=["cpu", "cuda"], default=default_devices)
    parser.add_argument("--write", action="store_true", help="replace the devices' sections of bench/RESULTS.md")
    parser.add_argument("--budget", type=float, default=2.0, help="seconds of repeats per measurement")
    args = parser.parse_args()
    for device in args.devices:
        gpu = torch.device(device) if device == "cuda" else None
        text = f"Machine: {machine(gpu)}.\n\n{table(measure(device, args.budget))}"
        print(text)
        if args.write:
            write_section(SECTIONS[device], text)


if __name__ == "__main__":
    main()
