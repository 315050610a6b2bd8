"""Run folders as in the seeds: output/<dataset>/<model>/<cfg name>/ and log/<dataset>/<model>/<cfg name>_<time>/.

The family names the two middle levels (``ConfigFamily.run_folders``: the data set used and MODEL.NAME for
DEKR). ``config.yaml`` in the output folder describes the checkpoints beside it: training writes it only
once the run has started, and a different config for the same folder is refused unless asked for.
"""
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import yaml
from yacs.config import CfgNode

from ..config import family_of
from ..utils.errors import ConfigError
from ..utils.io import atomic_write_text, require_writable_dir

logger = logging.getLogger(__name__)

CONFIG_FILE = "config.yaml"
# ``extra`` flag of log records meant for the log file only (e.g. the merged config).
FILE_ONLY = "file_only"


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
    """Create the run folders (OutputError when they cannot be written), attach a text log file to the root
    logger and log the merged config there only (not on the terminal)."""
    stamp = time.strftime("%Y-%m-%d-%H-%M")
    output = output_dir(cfg, cfg_path)
    tensorboard = Path(cfg.LOG_DIR or "log").joinpath(*family_of(cfg).run_folders(cfg), f"{run_name(cfg_path)}_{stamp}")
    log_file = output / f"{run_name(cfg_path)}_{stamp}_{phase}.log"
    if is_main:
        require_writable_dir(output, "OUTPUT_DIR")
        require_writable_dir(tensorboard, "LOG_DIR")
        output.mkdir(parents=True, exist_ok=True)
        tensorboard.mkdir(parents=True, exist_ok=True)
    configure_logging(log_file if is_main else None)
    logger.info("%s --cfg %s, merged config:\n%s", phase, cfg_path, cfg.dump(), extra={FILE_ONLY: True})
    return RunDirs(output=output, tensorboard=tensorboard, log_file=log_file)


# Config keys that change how a run is carried out, not what it computes: a rerun may change them freely.
RUN_NEUTRAL_KEYS = ("OUTPUT_DIR", "LOG_DIR", "WORKERS", "PIN_MEMORY", "PRINT_FREQ", "AUTO_RESUME", "DEVICE",
                    "DIST_BACKEND")
# Last components of keys setting a wall-time budget (a family's TRAIN.MAX_TIME, SOLVER.MAX_TIME).
RUN_NEUTRAL_LEAVES = ("MAX_TIME",)


def _comparable(tree: dict) -> dict:
    """A config mapping without the run-neutral keys."""
    def strip(node: dict, top: bool) -> dict:
        return {key: strip(value, False) if isinstance(value, dict) else value for key, value in node.items()
                if not (top and key in RUN_NEUTRAL_KEYS) and key not in RUN_NEUTRAL_LEAVES}
    return strip(tree, True)


def check_run_config(cfg: CfgNode, output: Path, new_run: bool) -> None:
    """Refuse (ConfigError) a config that differs from the run folder's ``config.yaml`` in what the run
    computes, unless ``new_run`` (the tools' --new-run)."""
    saved = output / CONFIG_FILE
    if new_run or not saved.is_file():
        return
    try:
        previous = yaml.safe_load(saved.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        previous = {}
    current = yaml.safe_load(cfg.dump())
    if _comparable(previous) == _comparable(current):
        return
    changed = sorted(_differences(_comparable(previous), _comparable(current)))
    shown = ", ".join(changed[:5]) + (", ..." if len(changed) > 5 else "")
    raise ConfigError(f"{saved} describes a different run (differs in {shown}); pass --new-run to start a new run "
                      f"in this folder, or use another config name or OUTPUT_DIR")


def _differences(old: dict, new: dict, prefix: str = "") -> list:
    keys = set(old) | set(new)
    found = []
    for key in keys:
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            found += _differences(a, b, f"{prefix}{key}.")
        elif a != b:
            found.append(f"{prefix}{key}")
    return found


def save_run_config(cfg: CfgNode, output: Path) -> None:
    """Write the merged config as the run folder's ``config.yaml`` (once the run has started)."""
    atomic_write_text(output / CONFIG_FILE, cfg.dump())


class ConsoleFilter(logging.Filter):
    """Keeps records logged with ``extra={FILE_ONLY: True}`` off the terminal."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(record, FILE_ONLY, False)


def configure_logging(log_file=None) -> None:
    """Log INFO to the console and, when given, to ``log_file`` (which alone gets FILE_ONLY records)."""
    console = logging.StreamHandler()
    console.addFilter(ConsoleFilter())
    handlers = [console]
    if log_file is not None:
        handlers.append(logging.FileHandler(log_file))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", handlers=handlers, force=True)
