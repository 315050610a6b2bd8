"""An exported DEKR run by onnxruntime, usable wherever posekit's inference takes the network."""
from pathlib import Path
from typing import Sequence, Tuple, Union

import torch

from .onnx import INPUT_NAME, OUTPUT_NAMES


class OnnxRuntimeNetwork:
    """Callable like the DEKR network: an (N, 3, H, W) RGB pixel batch (any dtype) -> (heatmap, offset) CPU tensors.

    So ``posekit.inference.dekr.predict_image(OnnxRuntimeNetwork(path), image, cfg, keypoint_set)`` runs
    posekit's whole test-time pipeline (resize, flip test, decoding, pose NMS, mapping back) on it.
    ``threads`` sets onnxruntime's intra-op threads (0: its default).
    """

    def __init__(self, path: Union[str, Path], providers: Sequence[str] = ("CPUExecutionProvider",),
                 threads: int = 0) -> None:
        import onnxruntime  # deployment-only dependency (requirements-dev.txt)

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads  # 0: onnxruntime's choice (one per physical core)
        # Idle worker threads would otherwise spin after each run and slow down the CPU post-processing.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = onnxruntime.InferenceSession(str(path), options, providers=list(providers))

    def __call__(self, image: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        heatmap, offset = self.session.run(list(OUTPUT_NAMES), {INPUT_NAME: image.cpu().float().numpy()})
        return torch.from_numpy(heatmap), torch.from_numpy(offset)
