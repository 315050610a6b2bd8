"""``make demo``: train the tiny sample DEKR for a few minutes, test it on the sample images, run the video demo;
then train a tiny DensePose R-CNN on the DensePose samples for a minute and draw its IUV output on a photo;
then train a tiny LCR-Net on the Human3.6M samples (200 steps, at most 90 s) and draw its 2D + 3D poses on one of them.

Every step is the user's own command line, run as a subprocess of this Python and printed before it runs.
"""
import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Sequence

from posekit.config import load_cfg
from posekit.engine.training_state import BEST_FILE, CHECKPOINT_FILE, FINAL_FILE
from posekit.engine.run_dirs import output_dir

REPO = Path(__file__).resolve().parents[1]
SAMPLE_CFG = "experiments/samples/dekr_tiny_coco.yaml"
SAMPLE_VIDEO = "data/samples/video/street.mp4"
VIDEO_OUTPUT = "output/inference_demo"
# Seconds of training: with start-up and the two test steps the demo stays within a few minutes on 2 CPU cores.
TRAIN_SECONDS = 180
DENSEPOSE_CFG = "experiments/samples/densepose_tiny.yaml"
# About a minute on 2 CPU cores: the DensePose losses fall, the model proves the pipeline, not accuracy.
DENSEPOSE_ITERATIONS = 200
DENSEPOSE_IMAGE = "data/samples/densepose/demo_im.jpg"
DENSEPOSE_OUTPUT = "output/densepose_demo/demo_im_dp_segm.png"
# apply_net numbers its outputs, one per input image, as detectron2's does.
DENSEPOSE_SHOWN = "output/densepose_demo/demo_im_dp_segm.0001.png"
LCRNET_CFG = "experiments/samples/lcrnet_tiny_h36m.yaml"
# A bound: the tiny config's 200 steps (people from about step 100) took 26 s on 2 free CPU cores; a loaded
# machine stops here with fewer steps.
LCRNET_SECONDS = 90
LCRNET_IMAGE = "data/samples/h36m/S8/S8_WalkDog_1.55011271/S8_WalkDog_1.55011271_000026.jpg"
LCRNET_OUTPUT = "output/lcrnet_demo"

OFFICIAL_WEIGHTS_HELP = """\
These weights were trained for at most {seconds} s on four sample images: they show that training, testing and the
video demo run end to end, not how accurate DEKR is (expect an AP near 0). For real results, download the
official models (model/pose_coco/pose_dekr_hrnetw32_coco.pth, model/rescore/final_rescore_coco_kpt.pth, see
the README) and run:
  python tools/valid.py --cfg experiments/coco/w32/w32_4x_reg03_bs10_512_adam_lr1e-3_coco_x140.yaml \\
      TEST.MODEL_FILE model/pose_coco/pose_dekr_hrnetw32_coco.pth
  python tools/inference_demo.py --cfg experiments/coco/inference_demo_coco.yaml --videoFile YOUR_VIDEO.mp4 \\
      --outputDir output --visthre 0.3 TEST.MODEL_FILE model/pose_coco/pose_dekr_hrnetw32_coco.pth"""


class StepFailed(Exception):
    """A demo step exited with a non-zero status."""


def run_step(title: str, tool: str, args: Sequence[str]) -> None:
    """Run ``python tools/<tool> ARGS`` from the repository root, echoing the command; raise StepFailed on failure."""
    command = [sys.executable, f"tools/{tool}", *args]
    print(f"\n=== {title}\n$ python {shlex.join(command[1:])}", flush=True)
    # Lets the demo run from a source checkout that was not pip-installed.
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO / "lib"),
                                                                     os.environ.get("PYTHONPATH")])))
    code = subprocess.run(command, cwd=REPO, env=env).returncode
    if code != 0:
        raise StepFailed(f"demo stopped: '{title}' failed with exit status {code}; its output is above")


def trained_weights(run_dir: Path) -> Path:
    """The best model of the sample run, or its last checkpoint when no epoch has finished yet."""
    best = run_dir / BEST_FILE
    return best if best.is_file() else run_dir / CHECKPOINT_FILE


def main() -> int:
    """Run the seven demo steps and say where their outputs are."""
    run_dir = output_dir(load_cfg(str(REPO / SAMPLE_CFG)), SAMPLE_CFG)
    densepose_dir = output_dir(load_cfg(str(REPO / DENSEPOSE_CFG)), DENSEPOSE_CFG)
    lcrnet_dir = output_dir(load_cfg(str(REPO / LCRNET_CFG)), LCRNET_CFG)
    try:
        run_step(f"1/7 train the tiny sample model for at most {TRAIN_SECONDS} s", "train.py",
                 ["--cfg", SAMPLE_CFG, "TRAIN.MAX_TIME", str(TRAIN_SECONDS)])
        weights = str(trained_weights(run_dir))
        run_step("2/7 test it on data/samples/coco (AP table)", "valid.py",
                 ["--cfg", SAMPLE_CFG, "TEST.MODEL_FILE", weights])
        run_step(f"3/7 run the video demo on {SAMPLE_VIDEO}", "inference_demo.py",
                 ["--cfg", SAMPLE_CFG, "--videoFile", SAMPLE_VIDEO, "--outputDir", VIDEO_OUTPUT,
                  "TEST.MODEL_FILE", weights])
        run_step(f"4/7 train a tiny DensePose R-CNN on data/samples/densepose_coco ({DENSEPOSE_ITERATIONS} "
                 f"iterations)", "train.py",
                 ["--cfg", DENSEPOSE_CFG, "SOLVER.MAX_ITER", str(DENSEPOSE_ITERATIONS), "SOLVER.STEPS",
                  f"({DENSEPOSE_ITERATIONS * 4 // 5},)", "SOLVER.CHECKPOINT_PERIOD", str(DENSEPOSE_ITERATIONS)])
        run_step(f"5/7 draw its DensePose output on {DENSEPOSE_IMAGE}", "apply_net.py",
                 ["show", DENSEPOSE_CFG, str(densepose_dir / FINAL_FILE), DENSEPOSE_IMAGE, "dp_segm,bbox",
                  "--min_score", "0.3", "--output", DENSEPOSE_OUTPUT])
        run_step(f"6/7 train a tiny LCR-Net on data/samples/h36m for at most {LCRNET_SECONDS} s", "train.py",
                 ["--cfg", LCRNET_CFG, "--new-run", "SOLVER.MAX_TIME", str(LCRNET_SECONDS)])
        run_step(f"7/7 draw its 2D and 3D poses on {LCRNET_IMAGE}", "lcrnet_demo.py",
                 ["--cfg", LCRNET_CFG, "--input", LCRNET_IMAGE, "--output", LCRNET_OUTPUT,
                  "MODEL.WEIGHTS", str(lcrnet_dir / FINAL_FILE)])
    except StepFailed as failure:
        print(failure, file=sys.stderr)
        return 1
    print(f"\n=== outputs (under {REPO})\n"
          f"  trained weights, training log, loss curve: {run_dir}/\n"
          f"  test results json and log:                 {run_dir}/results/\n"
          f"  pose video, images, csv and json:          {VIDEO_OUTPUT}/\n"
          f"  DensePose weights and loss curves:         {densepose_dir}/\n"
          f"  DensePose parts drawn on the photo:        {DENSEPOSE_SHOWN} (a minute of training on three crops\n"
          f"                                             of one person: it shows the pipeline, not accuracy)\n"
          f"  LCR-Net weights and loss curves:           {lcrnet_dir}/\n"
          f"  LCR-Net figure (2D skeletons over the image, 3D poses below) and people json:\n"
          f"                                             {LCRNET_OUTPUT}/{Path(LCRNET_IMAGE).stem}_lcrnet.png,\n"
          f"                                             {LCRNET_OUTPUT}/lcrnet_results.json\n"
          f"                                             (200 steps on four images, at most {LCRNET_SECONDS} s: it\n"
          f"                                             shows the pipeline, not accuracy)\n"
          f"  tensorboard logs:                          log/\n\n"
          + OFFICIAL_WEIGHTS_HELP.format(seconds=TRAIN_SECONDS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
