"""What every command-line tool shares: ``--cfg FILE [KEY VALUE ...]`` parsing and error reporting."""
import argparse
import os
import sys
from typing import Callable, List, Optional

from yacs.config import CfgNode

from ..config import load_cfg
from ..utils.errors import PosekitError


def config_parser(description: str) -> argparse.ArgumentParser:
    """An argument parser with the seeds' surface: ``--cfg FILE`` and trailing ``KEY VALUE`` pairs."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--cfg", required=True, help="experiment yaml file")
    parser.add_argument("--debug", action="store_true",
                        help="show tracebacks for bad input (also POSEKIT_DEBUG=1)")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides: KEY VALUE ...")
    return parser


def load_cfg_from_args(args: argparse.Namespace) -> CfgNode:
    """The config named by ``--cfg`` with the command-line overrides merged in."""
    return load_cfg(args.cfg, args.opts)


def run_tool(main: Callable[[Optional[List[str]]], Optional[int]], argv: Optional[List[str]] = None) -> None:
    """Run a tool's ``main``; bad input becomes one line on stderr and exit code 2 (traceback with --debug)."""
    argv = sys.argv[1:] if argv is None else argv
    debug = "--debug" in argv or os.environ.get("POSEKIT_DEBUG") == "1"
    try:
        code = main(argv)
    except PosekitError as err:
        if debug:
            raise
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(code or 0)
