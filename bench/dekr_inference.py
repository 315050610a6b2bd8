"""DEKR inference speed: forward, pre- and post-processing times and end-to-end images/s, with the CPU floor.

    PYTHONPATH=lib python bench/dekr_inference.py [--models w32 w48] [--batches 1 8] [--flip on off]
        [--scales single multi] [--devices cpu cuda] [--modes ...] [--repeats N] [--skip-slow] [--write]
    PYTHONPATH=lib python bench/dekr_inference.py --profile [--models w32] [--devices cuda]

One row per (model, device and mode, batch, flip, scales); random weights. The input is a real
COCO image (data/samples/coco), repeated to fill a batch as video frames of one size would. The pipeline
is posekit.inference's (resize, flip test, aggregation, pose NMS, rescoring, mapping back); the network
is wrapped so that its calls are timed on their own (synchronised), which splits each run into
  pre      resize + copy to the device, per image (the network normalises inside the forward);
  forward  the network calls (plain and flipped, every scale), per batch;
  post     everything else per image: flip averaging and decoding, aggregation, pose NMS, rescoring,
           mapping back to the image.
The network is in PoseEstimator's inference form (batch norms folded into convolutions, channels_last).
The CPU floor is the forward's conv multiply-adds (posekit.models.complexity, at the real input sizes)
over this machine's conv throughput: the fastest 3x3 conv of HRNet's branch shapes (either layout) is picked
once, then timed again after every run of a row, and each row's floor uses the median of its own timings,
so that the machine's drifting speed weighs on a row and its floor alike.
--write replaces the "## DEKR inference, CPU" and/or "## DEKR inference, GPU" section of bench/RESULTS.md.
"""
import argparse
import statistics
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import cv2
import numpy as np
import torch
from torch import nn
from yacs.config import CfgNode

from common import ConvProbe, fastest_conv_probe, format_table, machine, timed, write_section
from posekit.config import load_cfg
from posekit.data.metadata import keypoint_set_from_cfg
from posekit.data.transforms import to_chw_tensor
from posekit.engine.device import configure_cudnn
from posekit.export import export_dekr
from posekit.export.runtime import OnnxRuntimeNetwork
from posekit.inference.cuda_graph import CudaGraphNetwork
from posekit.inference.dekr.pipeline import predict_images
from posekit.inference.dekr.resize import get_multi_scale_size, resize_align_multi_scale
from posekit.models import build_model, prepare_for_inference
from posekit.models.dekr import build_rescore_net
from posekit.models.complexity import count_macs
from posekit.models.dekr.adaptive_conv import AdaptBlock
from posekit.ops import DeformConv2d

REPO = Path(__file__).resolve().parents[1]
IMAGE = REPO / "data" / "samples" / "coco" / "images" / "val2017" / "000000000785.jpg"
MODELS = {
    "w32": REPO / "experiments" / "coco" / "w32" / "w32_4x_reg03_bs10_512_adam_lr1e-3_coco_x140.yaml",
    "w48": REPO / "experiments" / "coco" / "w48" / "w48_4x_reg03_bs5_640_adam_lr1e-3_coco_x140.yaml",
}
Runner = Callable[[torch.Tensor], Tuple[torch.Tensor, torch.Tensor]]
SCALE_SETS = {"single": [1.0], "multi": [2.0, 1.0, 0.5]}
MULTI_SCALE_NMS_THRE = 0.15  # the official README's multi-scale command line
# How the network runs. "fp32-frozen": a TorchScript trace frozen by torch.jit.optimize_for_inference
# (conv + batch-norm folding, conv + ReLU fusion); "onnxruntime": the ONNX export run by onnxruntime; both
# show what graph-level fusion buys on the CPU.
# "fp32-graph", "fp16-graph": the forward replayed from CUDA graphs (posekit.inference.cuda_graph), fp16 under
# autocast; they show what one launch per forward instead of thousands buys.
MODES = {"cpu": ["fp32", "fp32-frozen", "onnxruntime"], "cuda": ["fp32", "bf16", "fp16", "fp32-graph", "fp16-graph"]}
AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
AUTOCAST_MODES = ("bf16", "fp16", "fp16-graph")
SECTIONS = {"cpu": "DEKR inference, CPU", "cuda": "DEKR inference, GPU"}
# HRNet branch widths (W32) at 1/4 ... 1/32 of an 832x512 input: the floor uses the best of these.
THROUGHPUT_SHAPES = [(32, 128, 208), (64, 64, 104), (128, 32, 52), (256, 16, 26)]


@dataclass(frozen=True)
class Case:
    """One benchmark row's settings."""

    model: str
    device: torch.device
    mode: str
    batch: int
    flip: bool
    scales: str

    @property
    def mode_name(self) -> str:
        if self.mode in AUTOCAST_DTYPES:
            return f"{self.mode} autocast"
        return "fp16 autocast, CUDA graph" if self.mode == "fp16-graph" else self.mode


def frozen_torchscript(network: nn.Module, image: torch.Tensor) -> Runner:
    """The network traced on ``image`` (sizes stay symbolic), frozen and optimised for inference."""
    with warnings.catch_warnings():  # from argument checks in posekit.ops, which do not shape the graph
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        traced = torch.jit.trace(network, image, check_trace=False)
    return torch.jit.optimize_for_inference(torch.jit.freeze(traced))


def onnxruntime_network(network: nn.Module, image: torch.Tensor) -> Runner:
    """The network exported to ONNX and loaded into an onnxruntime CPU session."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "dekr.onnx"
        export_dekr(network, path, image.shape[-1])
        return OnnxRuntimeNetwork(path, threads=torch.get_num_threads())


COMPILED_MODES = {
    "fp32-frozen": frozen_torchscript,
    "onnxruntime": onnxruntime_network,
    "fp32-graph": lambda network, _image: CudaGraphNetwork(network),
    "fp16-graph": lambda network, _image: CudaGraphNetwork(network, torch.float16),
}


class TimedNetwork(nn.Module):
    """The network in the case's mode, its calls timed (synchronised); outputs in float32 for post-processing."""

    def __init__(self, network: nn.Module, mode: str) -> None:
        super().__init__()
        self.network = network
        self.mode = mode
        self.seconds = 0.0
        self.compiled: Optional[Runner] = None

    def _run(self, image: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        if self.mode in AUTOCAST_DTYPES:
            with torch.autocast(image.device.type, dtype=AUTOCAST_DTYPES[self.mode]):
                return self.network(image)
        if self.mode in COMPILED_MODES:
            if self.compiled is None:  # built on the first (warm-up) call
                self.compiled = COMPILED_MODES[self.mode](self.network, image)
            return self.compiled(image)
        return self.network(image)

    def forward(self, image: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        outputs = []
        self.seconds += timed(lambda: outputs.extend(out.float() for out in self._run(image)), image.device)
        return outputs[0], outputs[1]


def load_case_cfg(case: Case) -> CfgNode:
    """The model's experiment config with the case's flip test and scales."""
    opts = ["TEST.FLIP_TEST", str(case.flip), "TEST.SCALE_FACTOR", str(SCALE_SETS[case.scales]),
            "DEVICE", str(case.device)]
    if case.scales == "multi":
        opts += ["TEST.NMS_THRE", str(MULTI_SCALE_NMS_THRE)]
    return load_cfg(str(MODELS[case.model]), opts)


def read_image() -> np.ndarray:
    """The benchmark image as RGB uint8."""
    return cv2.cvtColor(cv2.imread(str(IMAGE)), cv2.COLOR_BGR2RGB)


def preprocess_seconds(image: np.ndarray, cfg: CfgNode, device: torch.device) -> float:
    """Time to resize one image and copy it to the device at every scale (the network normalises it)."""
    def run() -> None:
        for scale in cfg.TEST.SCALE_FACTOR:
            resized = resize_align_multi_scale(image, cfg.DATASET.INPUT_SIZE, scale)[0]
            to_chw_tensor(resized).to(device)
    return timed(run, device)


def input_shapes(image: np.ndarray, cfg: CfgNode) -> List[Tuple[int, int, int, int]]:
    """(1, 3, h, w) network input shape at each scale."""
    return [(1, 3) + resize_align_multi_scale(image, cfg.DATASET.INPUT_SIZE, s)[0].shape[:2]
            for s in cfg.TEST.SCALE_FACTOR]


def forward_macs(cfg: CfgNode, shapes: Sequence[Tuple[int, ...]], batch: int, flip: bool) -> int:
    """Conv + linear multiply-adds of all network calls for one batch (computed on the meta device)."""
    with torch.device("meta"):
        network = build_model(cfg)
    per_image = sum(count_macs(network, shape) for shape in shapes)
    return per_image * batch * (2 if flip else 1)


def build_networks(case: Case, cfg: CfgNode) -> Tuple[TimedNetwork, nn.Module]:
    """Randomly initialised DEKR (wrapped for timing) and rescore net on the case's device."""
    torch.manual_seed(0)
    configure_cudnn(cfg)
    network = TimedNetwork(prepare_for_inference(build_model(cfg), case.device), case.mode)
    return network, build_rescore_net(cfg).to(case.device).eval()


def measure(case: Case, repeats: int, probes: Dict[Tuple[str, int], ConvProbe]) -> Dict[str, object]:
    """Medians of one case: pre/post per image, forward per batch, end-to-end images/s, and the CPU floor."""
    cfg = load_case_cfg(case)
    keypoint_set = keypoint_set_from_cfg(cfg)
    network, rescore_net = build_networks(case, cfg)
    images = [read_image()] * case.batch
    probe = None
    if case.device.type == "cpu":
        key = (case.device.type, case.batch)
        if key not in probes:
            probes[key] = fastest_conv_probe(case.device, case.batch, repeats, THROUGHPUT_SHAPES)
        probe = probes[key]
    samples, throughputs = [], []
    with torch.inference_mode():
        for attempt in range(repeats + 1):
            network.seconds = 0.0
            total = timed(lambda: predict_images(network, images, cfg, keypoint_set, rescore_net), case.device)
            pre = preprocess_seconds(images[0], cfg, case.device)
            if attempt:  # the first run warms up allocators and kernels
                samples.append((total, network.seconds, pre))
                if probe is not None:
                    throughputs.append(probe.throughput(repeats))
    total, forward, pre = (statistics.median(column) for column in zip(*samples))
    post = statistics.median((t - f) / case.batch - p for t, f, p in samples)
    width, height = get_multi_scale_size(*images[0].shape[:2], cfg.DATASET.INPUT_SIZE, 1.0)[0]
    row = {"case": case, "input": f"{width}x{height}",
           "pre": pre, "forward": forward, "post": post, "images_per_s": case.batch / total}
    if probe is not None:
        row["throughput"] = statistics.median(throughputs)
        row["floor"] = forward_macs(cfg, input_shapes(images[0], cfg), case.batch, case.flip) / row["throughput"]
    return row


def cases(args: argparse.Namespace) -> Iterator[Case]:
    """The grid the options select, CPU rows of batch > 1 with several scales left out by --skip-slow."""
    for device_name in args.devices:
        for model in args.models:
            for mode in (m for m in MODES[device_name] if m in args.modes):
                for batch in args.batches:
                    for flip in args.flip:
                        for scales in args.scales:
                            if args.skip_slow and device_name == "cpu" and batch > 1 and scales == "multi":
                                continue
                            yield Case(model, torch.device(device_name), mode, batch, flip == "on", scales)


def format_rows(rows: List[Dict[str, object]]) -> str:
    """The results as a markdown table."""
    header = ["model", "input (scale 1)", "device", "mode", "batch", "flip", "scales", "pre ms/img",
              "forward ms/batch", "post ms/img", "post / forward", "end-to-end img/s", "CPU floor ms/batch",
              "forward / floor"]
    lines = []
    for row in rows:
        case = row["case"]
        settings = [case.model, row.get("input", "-"), case.device.type, case.mode_name, str(case.batch),
                    "on" if case.flip else "off", ",".join(f"{s:g}" for s in SCALE_SETS[case.scales])]
        if "error" in row:
            lines.append(settings + [f"failed: {row['error']}"] + [""] * (len(header) - len(settings) - 1))
            continue
        forward_per_image = row["forward"] / case.batch
        floor = row.get("floor")
        lines.append(settings + [f"{row['pre'] * 1e3:.1f}", f"{row['forward'] * 1e3:.0f}", f"{row['post'] * 1e3:.1f}",
                      f"{row['post'] / forward_per_image:.1%}", f"{row['images_per_s']:.2f}",
                      f"{floor * 1e3:.0f}" if floor else "-",
                      f"{row['forward'] / floor:.2f}x" if floor else "-"])
    return format_table(header, lines)


def report(rows: List[Dict[str, object]], repeats: int) -> str:
    """Machine line, throughput, table and notes."""
    gpu = next((row["case"].device for row in rows if row["case"].device.type == "cuda"), None)
    notes = [f"Machine: {machine(gpu)}."]
    throughputs = [row["throughput"] for row in rows if "throughput" in row]
    if throughputs:
        notes.append(f"CPU conv throughput (the fastest float32 3x3 conv of HRNet's branch shapes, NCHW or NHWC, "
                     f"timed after every run of a row; a row's floor uses the median of its own timings): "
                     f"{min(throughputs) / 1e9:.0f}-{max(throughputs) / 1e9:.0f} GMAC/s over the rows.")
    notes += [
        f"Medians of {repeats} runs after one warm-up; random weights; input {IMAGE.relative_to(REPO)} "
        "(640x425), repeated to fill the batch.",
        "With random weights the centre heatmap yields up to MAX_NUM_PEOPLE (30) proposals per scale, the "
        "worst case for pose NMS, so post-processing times are upper bounds for real images.",
        "post / forward compares per-image post-processing with the per-image share of the batch forward.",
    ]
    return "\n".join(notes + goal_lines(rows)) + "\n\n" + format_rows(rows)


def find_row(rows: List[Dict[str, object]], **settings) -> Optional[Dict[str, object]]:
    """The first measured row whose case has these settings."""
    return next((row for row in rows if "error" not in row
                 and all(getattr(row["case"], key) == value for key, value in settings.items())), None)


def goal_lines(rows: List[Dict[str, object]]) -> List[str]:
    """The issue's goals checked against the rows measured (W32, flip on, one scale)."""
    lines = []
    cpu = find_row(rows, model="w32", mode="fp32", batch=1, flip=True, scales="single", device=torch.device("cpu"))
    if cpu:
        lines.append(f"Goal, post-processing <= 10% of forward (W32, CPU, batch 1, flip, one scale): "
                     f"{cpu['post'] / cpu['forward']:.1%}; goal, forward <= 1.5x the CPU floor: "
                     f"{cpu['forward'] / cpu['floor']:.2f}x.")
    gpu_fp32 = find_row(rows, model="w32", mode="fp32", batch=1, flip=True, scales="single", device=torch.device("cuda"))
    batched = [row for row in rows if "error" not in row and row["case"].device.type == "cuda"
               and row["case"].mode in AUTOCAST_MODES and row["case"].batch > 1 and row["case"].model == "w32"
               and row["case"].flip and row["case"].scales == "single"]
    if gpu_fp32 and batched:
        best = max(batched, key=lambda row: row["images_per_s"])
        fastest_forward = min(batched, key=lambda row: row["forward"] / row["case"].batch)
        lines.append(f"Goal, batched autocast >= 3x fp32 batch-1 throughput (W32, GPU, flip, one scale): "
                     f"end to end {best['images_per_s'] / gpu_fp32['images_per_s']:.2f}x ({best['case'].mode_name}, "
                     f"batch {best['case'].batch}); network alone "
                     f"{gpu_fp32['forward'] * fastest_forward['case'].batch / fastest_forward['forward']:.2f}x "
                     f"({fastest_forward['case'].mode_name}, batch {fastest_forward['case'].batch}).")
    return lines


def module_category(module: nn.Module) -> Optional[str]:
    """Profile bucket of a module whose own time is measured (None: not measured on its own)."""
    if isinstance(module, DeformConv2d):
        return "deform conv (posekit::deform_conv2d)"
    if isinstance(module, AdaptBlock):
        return "AdaptBlock remainder (offset arithmetic, residual add)"
    if isinstance(module, nn.Conv2d):
        return "regular convs"
    if isinstance(module, nn.ReLU):
        return "relu modules"
    return None


def module_times(network: nn.Module, image: torch.Tensor) -> Dict[str, float]:
    """Seconds per module category in one forward (children's time excluded from AdaptBlock's)."""
    totals: Dict[str, float] = {}
    starts: Dict[int, float] = {}
    measured = {m: module_category(m) for m in network.modules() if module_category(m)}

    def before(module, _inputs):
        starts[id(module)] = time.perf_counter()

    def after(module, _inputs, _output):
        elapsed = time.perf_counter() - starts.pop(id(module))
        totals[measured[module]] = totals.get(measured[module], 0.0) + elapsed
        parent = owners.get(module)
        if parent is not None:  # an AdaptBlock's child: not part of the block's remainder
            totals[measured[parent]] = totals.get(measured[parent], 0.0) - elapsed

    owners = {child: block for block in measured if isinstance(block, AdaptBlock)
              for child in block.modules() if child is not block and child in measured}
    handles = [h for m in measured for h in (m.register_forward_pre_hook(before), m.register_forward_hook(after))]
    try:
        totals["whole forward"] = timed(lambda: network(image), image.device)
    finally:
        for handle in handles:
            handle.remove()
    return totals


def profile_forward(model: str) -> None:
    """Print where the CPU time of one batch-1 scale-1 forward goes, by module kind and by operator."""
    case = Case(model, torch.device("cpu"), "fp32", 1, False, "single")
    cfg = load_case_cfg(case)
    network = build_networks(case, cfg)[0].network
    resized = resize_align_multi_scale(read_image(), cfg.DATASET.INPUT_SIZE, 1.0)[0]
    image = to_chw_tensor(resized)[None]
    with torch.inference_mode():
        network(image)
        totals = module_times(network, image)
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profiler:
            network(image)
    whole = totals.pop("whole forward")
    print(f"{model} forward, input {tuple(image.shape)}: {whole * 1e3:.0f} ms")
    for name, seconds in sorted(totals.items(), key=lambda item: -item[1]):
        print(f"  {name:55s} {seconds * 1e3:8.1f} ms {seconds / whole:6.1%}")
    print(profiler.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))


def profile_gpu_kernels(model: str, batch: int = 8) -> None:
    """Print the GPU kernels of one fp16-autocast forward of a batch, by device time."""
    case = Case(model, torch.device("cuda"), "fp16", batch, False, "single")
    cfg = load_case_cfg(case)
    network = build_networks(case, cfg)[0]
    resized = resize_align_multi_scale(read_image(), cfg.DATASET.INPUT_SIZE, 1.0)[0]
    image = to_chw_tensor(resized)[None].repeat(batch, 1, 1, 1).to(case.device)
    activities = [torch.profiler.ProfilerActivity.CPU, torch.profiler.ProfilerActivity.CUDA]
    with torch.inference_mode():
        network(image)  # cuDNN picks its algorithms
        with torch.profiler.profile(activities=activities) as profiler:
            network(image)
    print(f"{model} forward, fp16 autocast, input {tuple(image.shape)}")
    print(profiler.key_averages().table(sort_by="self_device_time_total", row_limit=25))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", choices=sorted(MODELS), default=sorted(MODELS))
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 8])
    parser.add_argument("--flip", nargs="+", choices=["on", "off"], default=["on", "off"])
    parser.add_argument("--scales", nargs="+", choices=sorted(SCALE_SETS), default=["single", "multi"])
    default_devices = ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]
    parser.add_argument("--devices", nargs="+", choices=["cpu", "cuda"], default=default_devices)
    all_modes = sorted({mode for modes in MODES.values() for mode in modes})
    parser.add_argument("--modes", nargs="+", choices=all_modes, default=all_modes,
                        help="network modes (CPU: fp32, fp32-frozen, onnxruntime; CUDA: fp32, bf16, fp16, fp32-graph, "
                             "fp16-graph)")
    parser.add_argument("--threads", type=int, default=0,
                        help="CPU threads for torch and onnxruntime (default: torch's); 1 is steadier on a busy machine")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per row (after one warm-up)")
    parser.add_argument("--skip-slow", action="store_true",
                        help="leave out CPU rows with batch > 1 and several scales (minutes each)")
    parser.add_argument("--write", action="store_true", help="replace the devices' sections of bench/RESULTS.md")
    parser.add_argument("--profile", action="store_true",
                        help="instead, print where one forward's time goes (CPU: module kinds and operators; "
                             "with --devices cuda: GPU kernels of a batch of 8)")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.profile:
        profile = profile_gpu_kernels if "cuda" in args.devices else profile_forward
        for model in args.models:
            profile(model)
        return
    probes: Dict[Tuple[str, int], ConvProbe] = {}
    rows = []
    for case in cases(args):
        try:
            rows.append(measure(case, args.repeats, probes))
        except (RuntimeError, TypeError, ValueError) as error:  # e.g. an op without a kernel for this mode
            rows.append({"case": case, "error": " ".join(str(error).split())[:200]})
        print(format_rows(rows[-1:]).splitlines()[-1], flush=True)
    for device in args.devices:
        text = report([row for row in rows if row["case"].device.type == device], args.repeats)
        print(text)
        if args.write:
            write_section(SECTIONS[device], text)


if __name__ == "__main__":
    main()
