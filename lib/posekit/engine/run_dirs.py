"""Run folders as in the seeds: output/<dataset>/<model>/<cfg name>/ and log/<dataset>/<model>/<cfg name>_<time>/.

The family names the two middle levels (``ConfigFamily.run_folders``: DATASET.DATASET and MODEL.NAME for DEKR).
"""
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from yacs.config import CfgNode

from ..config import family_of
from ..utils.io import atomic_write_text


@dataclass
class RunDirs:
    """Where one run writes: checkpoints and results, tensorboard events, and its text log file."""

    output: Path
    tensorboard: Path
    log_file: Path


def run_name(cfg_path: str) -> str:
    """The config's file name without extension, as the seeds name run folders."""
    return Path(cfg_path).stem


def output_dir(cfg: CfgNode, cfg_path: str) -> Path:
    """``<OUTPUT_DIR>/<dataset>/<model>/<cfg name>`` (OUTPUT_DIR defaults to ``output``)."""
    return Path(cfg.OUTPUT_DIR or "output").joinpath(*family_of(cfg).run_folders(cfg), run_name(cfg_path))


def setup_run(cfg: CfgNode, cfg_path: str, phase: str, is_main: bool = True) -> RunDirs:
    """Create the run folders, attach a text log file to the root logger, save the merged config."""
    stamp = time.strftime("%Y-%m-%d-%H-%M")
    output = output_dir(cfg, cfg_path)
    tensorboard = Path(cfg.LOG_DIR or "log").joinpath(*family_of(cfg).run_folders(cfg), f"{run_name(cfg_path)}_{stamp}")
    log_file = output / f"{run_name(cfg_path)}_{stamp}_{phase}.log"
    if is_main:
        output.mkdir(parents=True, exist_ok=True)
        tensorboard.mkdir(parents=True, exist_ok=True)
        atomic_write_text(output / "config.yaml", cfg.dump())
    configure_logging(log_file if is_main else None)
    return RunDirs(output=output, tensorboard=tensorboard, log_file=log_file)


def configure_logging(log_file=None) -> None:
    """Log INFO to the console and, when given, to ``log_file``."""
    handlers = [logging.StreamHandler()]
    if log_file is not None:
        handlers.append(logging.FileHandler(log_file))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", handlers=handlers, force=True)
