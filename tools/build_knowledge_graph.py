"""Build the KTN / KTNv2 knowledge graphs (kpt_surf 17x25, part_surf 15x25, person_surf 6x25) as one npz file.

    python tools/build_knowledge_graph.py --output graphs.npz [--glove glove.6B.300d.txt] [--glove-dim 300]
                                          [--relationships relationships.json]
    python tools/build_knowledge_graph.py --output graphs.npz --from-official kpt_surf_crkg.pkl part_surf_crkg.pkl \
                                          person_surf_crkg.pkl [kpt_surf=kpt_surface_relationships.pkl]

The first form does what the official comm_knowledge/script_crkg_generate.py does (docs/models/densepose.md §3.6),
with 0/0 in the degree normalisation giving 0 instead of NaN; without --glove or --relationships that term is left
out and the tool says so. The second converts official pickles: they are read as NumPy arrays only, never by
running what they name. The output is written atomically; bad input exits 2 with one line.
"""
import argparse
import os
from typing import Dict, List, Optional

import numpy as np

from posekit.apis.cli import run_tool
from posekit.data.knowledge_graphs import (GLOVE_DIM, build_relation_graphs, checked_graph, official_graph_sources,
                                           save_relation_graphs)
from posekit.models.safe_pickle import load_safe_pickle
from posekit.utils.errors import ConfigError, DataError


def parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--output", required=True, help="npz file to write")
    parser.add_argument("--glove", help="GloVe vectors, e.g. glove.6B.300d.txt")
    parser.add_argument("--glove-dim", type=int, default=GLOVE_DIM, help="values per GloVe vector")
    parser.add_argument("--relationships", help="Visual Genome relationships.json")
    parser.add_argument("--from-official", nargs="+", metavar="[NAME=]PKL",
                        help="official *_crkg.pkl / kpt_surface_relationships.pkl files to convert")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for bad input")
    return parser.parse_args(argv)


def read_official_graphs(items: List[str]) -> Dict[str, np.ndarray]:
    """The official pickled graphs, named by file name or NAME=PATH, as checked arrays."""
    graphs = {}
    for name, path in official_graph_sources(items):
        if not os.path.isfile(path):
            raise DataError(f"graph file not found: {path}")
        graphs[name] = checked_graph(load_safe_pickle(path), name, path)
    return graphs


def main(argv: Optional[List[str]] = None) -> int:
    """Build or convert the graphs and write them."""
    args = parse_args(argv)
    if args.from_official and (args.glove or args.relationships):
        raise ConfigError("--from-official converts files as they are: give it without --glove / --relationships")
    if args.from_official:
        graphs = read_official_graphs(args.from_official)
    else:
        graphs = build_relation_graphs(args.glove, args.relationships, args.glove_dim)
    try:
        save_relation_graphs(args.output, graphs)
    except OSError as err:  # a folder, a read-only place
        raise ConfigError(f"--output {args.output}: cannot write it ({err.strerror or err})") from None
    shapes = ", ".join(f"{name} {graph.shape[0]}x{graph.shape[1]}" for name, graph in graphs.items())
    print(f"wrote {args.output}: {shapes}")
    return 0


if __name__ == "__main__":
    run_tool(main)
