"""tools/build_knowledge_graph.py: builds the graphs from tiny GloVe / Visual Genome files, converts official
pickles (arrays only: a pickle that would run code is refused unrun), and answers bad input with one line, exit 2,
and no output file."""
import importlib.util
import os
import pickle
import sys

import numpy as np
import pytest

from posekit.data.knowledge_graphs import load_relation_graph

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "tests", "data"))
from test_knowledge_graphs import CreatesFile, write_glove, write_relationships  # noqa: E402


def load_tool():
    spec = importlib.util.spec_from_file_location("build_knowledge_graph",
                                                  os.path.join(REPO, "tools", "build_knowledge_graph.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


TOOL = load_tool()


def run(argv, capsys):
    """(exit code, stdout lines, stderr lines) of the tool as its command line runs it."""
    with pytest.raises(SystemExit) as exit_info:
        TOOL.run_tool(TOOL.main, argv)
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out.splitlines(), captured.err.splitlines()


def test_build_from_glove_and_visual_genome(tmp_path, capsys):
    glove = write_glove(tmp_path / "glove.txt")
    relationships = write_relationships(tmp_path / "relationships.json")
    output = str(tmp_path / "out" / "graphs.npz")
    code, out, err = run(["--glove", glove, "--glove-dim", "2", "--relationships", relationships,
                          "--output", output], capsys)
    assert (code, err) == (0, [])
    assert out == [f"wrote {output}: kpt_surf 17x25, part_surf 15x25, person_surf 6x25"]
    # person x chart 3, worked out in tests/data/test_knowledge_graphs.py: 0.5 (1/sqrt2 + 2/3).
    person = load_relation_graph(output, "person_surf", (6, 25))
    assert person[2, 3] == pytest.approx(0.5 * (1 / np.sqrt(2) + 2 / 3), abs=1e-12)


def test_convert_official_pickles(tmp_path, capsys):
    rng = np.random.default_rng(0)
    kpt, part = rng.random((17, 25)), rng.random((15, 25))
    (tmp_path / "kpt_surf_crkg.pkl").write_bytes(pickle.dumps(kpt, protocol=2))  # as Python 2 / NumPy 1 wrote
    (tmp_path / "part.pkl").write_bytes(pickle.dumps(part, protocol=5))
    output = str(tmp_path / "graphs.npz")
    code, out, err = run(["--output", output, "--from-official", str(tmp_path / "kpt_surf_crkg.pkl"),
                          f"part_surf={tmp_path / 'part.pkl'}"], capsys)
    assert (code, err, out) == (0, [], [f"wrote {output}: kpt_surf 17x25, part_surf 15x25"])
    np.testing.assert_array_equal(load_relation_graph(output, "kpt_surf", (17, 25)), kpt)
    np.testing.assert_array_equal(load_relation_graph(output, "part_surf", (15, 25)), part)


def test_code_running_pickle_is_refused_unrun(tmp_path, capsys):
    marker = tmp_path / "ran"
    graph = tmp_path / "person_surf_crkg.pkl"
    graph.write_bytes(pickle.dumps(CreatesFile(marker)))
    output = tmp_path / "graphs.npz"
    code, out, err = run(["--output", str(output), "--from-official", str(graph)], capsys)
    assert code == 2 and len(err) == 1
    assert err[0].startswith(f"error: {graph}: posekit refuses to load io.open")
    assert not marker.exists() and not output.exists()


def write_array(path, array):
    path.write_bytes(pickle.dumps(array))
    return str(path)


@pytest.mark.parametrize("make_args, message", [
    (lambda d: ["--from-official", write_array(d / "kpt_surf_crkg.pkl", np.zeros((25, 17)))],
     "kpt_surf_crkg.pkl: graph 'kpt_surf' has shape (25, 17), expected (17, 25)"),
    (lambda d: ["--from-official", write_array(d / "part_surf_crkg.pkl", np.full((15, 25), np.nan))],
     "part_surf_crkg.pkl: graph 'part_surf' has 375 NaN or infinite entries"),
    (lambda d: ["--from-official", write_array(d / "person_surf_crkg.pkl", {"a": np.zeros(3)})],
     "person_surf_crkg.pkl: graph 'person_surf' must be a numeric NumPy array, got dict"),
    (lambda d: ["--from-official", write_array(d / "graph.pkl", np.zeros((17, 25)))],
     "graph.pkl: not an official graph file name"),
    (lambda d: ["--from-official", str(d / "kpt_surf_crkg.pkl")], "graph file not found: "),
    (lambda d: ["--relationships", str(d / "relationships.json")],
     "Visual Genome relationships file not found: "),
    (lambda d: ["--glove", write_glove(d / "glove.txt", dim=3), "--glove-dim", "2"],
     "glove.txt:2: the vector of 'ankle' has 3 values, expected 2"),
    (lambda d: ["--glove", "g.txt", "--from-official", "kpt_surf_crkg.pkl"],
     "--from-official converts files as they are"),
])
def test_bad_input_one_line_exit_2(tmp_path, capsys, make_args, message):
    output = tmp_path / "graphs.npz"
    code, out, err = run(make_args(tmp_path) + ["--output", str(output)], capsys)
    assert code == 2 and out == [] and len(err) == 1
    assert message in err[0]
    assert not output.exists()
