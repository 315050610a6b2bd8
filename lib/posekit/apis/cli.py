"""What every command-line tool shares: ``--cfg FILE [KEY VALUE ...]`` parsing and error reporting."""
import argparse
import errno
import os
import sys
from typing import Callable, List, Optional

from yacs.config import CfgNode

from ..config import load_cfg
from ..utils.errors import ConfigError, PosekitError
from .family import family_tools


def config_parser(description: str) -> argparse.ArgumentParser:
    """An argument parser with the seeds' surface: ``--cfg FILE`` and trailing ``KEY VALUE`` pairs."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--cfg", required=True, help="experiment yaml file")
    parser.add_argument("--debug", action="store_true",
                        help="show tracebacks for bad input (also POSEKIT_DEBUG=1)")
    parser.add_argument("--print-config", action="store_true",
                        help="print the merged config (otherwise it goes only to the run's log file)")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides: KEY VALUE ...")
    return parser


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    """``--skip-missing``, for tools that read a data set."""
    parser.add_argument("--skip-missing", action="store_true",
                        help="leave out images the annotation file lists but the image folder lacks "
                             "(otherwise they are an error before the job starts)")


def load_cfg_from_args(args: argparse.Namespace) -> CfgNode:
    """The config named by ``--cfg`` with the command-line overrides (and ``--skip-missing``) merged in;
    printed with ``--print-config``."""
    opts = list(args.opts)
    if getattr(args, "skip_missing", False):
        cfg = load_cfg(args.cfg, opts)
        key = family_tools(cfg).skip_missing_key
        if not key:
            raise ConfigError(f"--skip-missing: the '{cfg.FAMILY}' family does not support it")
        opts += [key, "True"]
    cfg = load_cfg(args.cfg, opts)
    if args.print_config:
        print(cfg.dump())
    return cfg


# errno values of a path that cannot be written (or read): the tools' output folders checked up front miss
# these only in races and odd file systems.
UNWRITABLE = (errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.ENOTDIR, errno.EISDIR)


def run_tool(main: Callable[[Optional[List[str]]], Optional[int]], argv: Optional[List[str]] = None) -> None:
    """Run a tool's ``main``; bad input and unwritable outputs become one line on stderr and exit code 2
    (traceback with --debug); an interruption exits 130 (128 + the signal when training saved first)."""
    argv = sys.argv[1:] if argv is None else argv
    debug = "--debug" in argv or os.environ.get("POSEKIT_DEBUG") == "1"
    try:
        code = main(argv)
    except PosekitError as err:
        if debug:
            raise
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except OSError as err:
        if debug or err.errno not in UNWRITABLE or not err.filename:
            raise
        print(f"error: {err.filename}: {err.strerror}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt as err:
        print(f"interrupted: {err}" if str(err) else "interrupted", file=sys.stderr)
        sys.exit(getattr(err, "exit_code", 130))
    sys.exit(code or 0)
