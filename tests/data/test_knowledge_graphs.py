"""KTN knowledge graphs (densepose.md §3.6): each term checked on entries worked out by hand from tiny generated
GloVe and Visual Genome files, the 0/0 entries that are NaN in the official script, and the npz storage."""
import json
import logging
import math
import pickle
import warnings

import numpy as np
import pytest

from posekit.data.knowledge_graphs import (GRAPH_SHAPES, build_relation_graphs, degree_normalize, glove_words,
                                           load_relation_graph, read_glove_vectors, save_relation_graphs)
from posekit.utils.errors import DataError

# Every word the three graphs embed: keypoint and body words, sides, and the generator's fillers.
NEEDED_WORDS = {"nose", "eye", "ear", "shoulder", "elbow", "wrist", "hip", "knee", "ankle", "middle", "left",
                "right", "back", "front", "torso", "hand", "foot", "leg", "arm", "head", "full", "upper", "lower",
                "person"}
# 2-d vectors: (1, 0) for every word but these, so each cosine below is a few integers.
SPECIAL_VECTORS = {"eye": (0, 1), "torso": (3, 4), "person": (0, 1)}

# (subject, object) entities; the counts each adds are worked out in the comments of test_graph_entries.
RELATIONSHIPS = [
    ({"name": "eye"}, {"name": "head"}),
    ({"name": "eye"}, {"name": "head"}),
    ({"names": ["eye", "eyes"]}, {"name": "head"}),  # no "name": the first of "names"
    ({"name": "nose"}, {"name": "head"}),
    ({"name": "person"}, {"name": "hand"}),
    ({"name": "elbow"}, {"name": "glove"}),
    ({"name": "man"}, {"name": "shirt"}),
    ({"name": "leg"}, {"name": "arm"}),
    ({}, {"name": "head"}),  # a nameless subject
]


def write_glove(path, dim=2, special=SPECIAL_VECTORS, extra_lines=()):
    lines = ["the " + " ".join(["0.5"] * dim)] + list(extra_lines)
    for word in sorted(NEEDED_WORDS):
        vector = special.get(word, (1,) + (0,) * (dim - 1))
        lines.append(word + " " + " ".join(str(value) for value in vector))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def write_relationships(path, relationships=RELATIONSHIPS):
    images = [{"image_id": 1, "relationships": [{"subject": s, "object": o, "predicate": "on"}
                                                for s, o in relationships[:5]]},
              {"image_id": 2, "relationships": [{"subject": s, "object": o, "predicate": "near"}
                                                for s, o in relationships[5:]]}]
    path.write_text(json.dumps(images), encoding="utf-8")
    return str(path)


@pytest.fixture(scope="module")
def graphs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("kg")
    glove = write_glove(folder / "glove.txt")
    relationships = write_relationships(folder / "relationships.json")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the 0/0 entries must not even warn
        return build_relation_graphs(glove, relationships, glove_dim=2)


def test_shapes_and_background(graphs):
    assert {name: graph.shape for name, graph in graphs.items()} == {
        "kpt_surf": (17, 25), "part_surf": (15, 25), "person_surf": (6, 25)}
    for graph in graphs.values():
        assert np.isfinite(graph).all()
        assert not graph[:, 0].any()  # background chart 0
    assert not graphs["part_surf"][0].any()  # background part 0
    assert (graphs["person_surf"] == graphs["person_surf"][0]).all()  # one row, 6 times


def test_keypoint_graph_entries(graphs):
    # Keypoint counts (rule 1: keypoint & surface word; 2: keypoint synonym & surface word; 3: keypoint & surface
    # synonym): eye-head 3 (relationships 1-3), nose-head 1, wrist-hand 1 ("hand" is a wrist synonym: person-hand),
    # elbow-hand 1 and elbow-arm 1 from (elbow, glove) by rule 3 ("glove" stands for hand and "elbow" itself for
    # arm), elbow-leg 1 and elbow-arm 1 more from (leg, arm) by rule 2 ("arm" is an elbow synonym).
    # Spread over both sides: row sums nose 2, each eye 6, each wrist 2, each elbow 2 + 8 + 16 = 26; column sums
    # charts 23/24: 1 + 3 + 3 = 7, charts 3/4: 2 + 2 = 4, arm charts 2 + 2 = 4.
    kpt = graphs["kpt_surf"]  # rows: COCO keypoints; column c = chart c
    # left_eye x left_head: cos([left, eye], [left, head]) = (1*1 + 0) / (sqrt2 sqrt2) = 0.5; rule: eye -> 23, 24.
    assert kpt[1, 23] == pytest.approx(0.3 * (3 / math.sqrt(6 * 7) + 0.5 + 1), abs=1e-12)
    # nose x right_head: [middle, nose] . [right, head] = all (1, 0) -> cos 1; rule 1.
    assert kpt[0, 24] == pytest.approx(0.3 * (1 / math.sqrt(2 * 7) + 1 + 1), abs=1e-12)
    # right_wrist x chart 3 (right hand): cos 1, rule R-wrist -> 3.
    assert kpt[10, 3] == pytest.approx(0.3 * (1 / math.sqrt(2 * 4) + 1 + 1), abs=1e-12)
    # left_elbow x chart 15 (left arm): 2 / sqrt(26 * 4), cos 1, rule L-elbow -> 15.
    assert kpt[7, 15] == pytest.approx(0.3 * (2 / math.sqrt(26 * 4) + 1 + 1), abs=1e-12)
    # left_shoulder has no counts (0/0, NaN in the official script) -> 0; cos([left, shoulder], [back, torso]) =
    # (1 + 3) / (sqrt2 sqrt26); rule L-shoulder -> 1.
    assert kpt[5, 1] == pytest.approx(0.3 * (0 + 4 / math.sqrt(2 * 26) + 1), abs=1e-12)
    # left_eye x chart 5 (left foot): column 5 is empty too; cos([left, eye], [left, foot]) = 1/2; no rule.
    assert kpt[1, 5] == pytest.approx(0.3 * 0.5, abs=1e-12)


def test_part_graph_entries(graphs):
    # Part counts: head-head 5 (relationships 1-4 and 9), hand-hand 1, leg-leg, leg-arm, arm-leg, arm-arm 1 each;
    # elbow-glove adds nothing (the part graph's synonym rules never fire). upper_* limbs take the left (back)
    # charts only, lower_* the right (front) ones, so each limb row sums 4 + 4 = 8 and each limb chart 2 + 2 = 4.
    part = graphs["part_surf"]  # row r = part r (0: background)
    # upper_right_leg (part 6) x chart 8 (left leg): 1 / sqrt(8 * 4); cos([upper, right, leg], [full, left, leg]) = 1;
    # rule upper-R-leg -> 7, 9 only.
    assert part[6, 8] == pytest.approx(0.3 * (1 / math.sqrt(32) + 1), abs=1e-12)
    # ... x chart 7 (right leg): no count by the asymmetric spread (column 7 is not empty: 0 / sqrt(32)), rule 1.
    assert part[6, 7] == pytest.approx(0.3 * (0 + 1 + 1), abs=1e-12)
    # head (part 14) x chart 23: 5 / sqrt(10 * 5), cos 1, rule 1.
    assert part[14, 23] == pytest.approx(0.3 * (5 / math.sqrt(50) + 1 + 1), abs=1e-12)
    # torso (part 1) x chart 3: empty row (NaN officially); cos([full, middle, torso], [full, right, hand]) =
    # (1 + 1 + 3) / (sqrt27 sqrt3) = 5/9; no rule.
    assert part[1, 3] == pytest.approx(0.3 * 5 / 9, abs=1e-12)


def test_person_graph_entries(graphs):
    # person-hand 1 only: row sum 2, charts 3 and 4 sum 1 each, every other column 0/0.
    person = graphs["person_surf"]
    # cos([full, middle, person], [full, right, hand]) = (1 + 1 + 0) / (sqrt3 sqrt3) = 2/3; no rule term, scale 0.5.
    assert person[0, 3] == pytest.approx(0.5 * (1 / math.sqrt(2) + 2 / 3), abs=1e-12)
    # chart 1: 0/0 -> 0; cos([full, middle, person], [full, back, torso]) = (1 + 1 + 4) / (sqrt3 sqrt27) = 2/3.
    assert person[5, 1] == pytest.approx(0.5 * 2 / 3, abs=1e-12)


def test_degree_normalization_guards_zero_rows_and_columns():
    counts = np.array([[4.0, 0.0, 0.0], [1.0, 2.0, 0.0], [0.0, 0.0, 0.0]])
    # rows sum 4, 3, 0; columns 5, 2, 0.
    expected = np.array([[4 / math.sqrt(20), 0, 0], [1 / math.sqrt(15), 2 / math.sqrt(6), 0], [0, 0, 0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_allclose(degree_normalize(counts), expected, rtol=0, atol=1e-15)


def test_rules_alone_without_glove_or_visual_genome(caplog):
    with caplog.at_level(logging.WARNING):
        graphs = build_relation_graphs()
    assert len(caplog.records) == 1 and "without GloVe or Visual Genome" in caplog.records[0].getMessage()
    # The anatomical rules (densepose.md §3.6 (c)), 1-based charts, x 0.3.
    kpt_rules = {6: (1, 2, 15, 17), 11: (3, 20, 22), 16: (5, 12, 14), 1: (23, 24)}
    for row, charts in kpt_rules.items():
        assert graphs["kpt_surf"][row - 1].nonzero()[0].tolist() == list(charts)
        assert (graphs["kpt_surf"][row - 1, list(charts)] == pytest.approx(0.3))
    part_rules = {1: (1, 2), 6: (7, 9), 13: (20, 22)}
    for part, charts in part_rules.items():
        assert graphs["part_surf"][part].nonzero()[0].tolist() == list(charts)
    assert graphs["kpt_surf"].sum() == pytest.approx(0.3 * (5 * 2 + 8 * 4 + 4 * 3))
    assert not graphs["person_surf"].any()


def test_one_source_missing_is_said(tmp_path, caplog):
    glove = write_glove(tmp_path / "glove.txt")
    with caplog.at_level(logging.WARNING):
        graphs = build_relation_graphs(glove, None, glove_dim=2)
    assert [record.getMessage() for record in caplog.records] == [
        "knowledge graphs built without Visual Genome: its term is left out"]
    assert graphs["person_surf"][0, 1] == pytest.approx(0.5 * 2 / 3)


def test_glove_reading_keeps_only_needed_words(tmp_path):
    # Unneeded lines are skipped unparsed, even malformed ones.
    glove = write_glove(tmp_path / "glove.txt", extra_lines=["odd 1 2 3", "broken x"])
    assert glove_words() == NEEDED_WORDS
    vectors = read_glove_vectors(glove, frozenset({"eye", "torso"}), dim=2)
    assert sorted(vectors) == ["eye", "torso"]
    np.testing.assert_array_equal(vectors["torso"], [3.0, 4.0])


@pytest.mark.parametrize("line, message", [("eye 0 1 2", "has 3 values, expected 2"),
                                           ("eye 0 one", "is not 2 numbers")])
def test_glove_bad_line(tmp_path, line, message):
    path = tmp_path / "glove.txt"
    path.write_text(f"the 1 2\n{line}\n", encoding="utf-8")
    with pytest.raises(DataError, match=f"{path}:2: the vector of 'eye' {message}"):
        read_glove_vectors(str(path), frozenset({"eye"}), dim=2)


def test_glove_missing_word_and_file(tmp_path):
    glove = write_glove(tmp_path / "glove.txt")
    with pytest.raises(DataError, match="glove.txt: no vector for elbows, wrists"):
        read_glove_vectors(glove, frozenset({"eye", "wrists", "elbows"}), dim=2)
    with pytest.raises(DataError, match="GloVe file not found: .*nowhere.txt"):
        build_relation_graphs(str(tmp_path / "nowhere.txt"))


@pytest.mark.parametrize("content, message", [
    (None, "Visual Genome relationships file not found: .*relationships.json"),
    ("[{\"relationships\": ", "relationships.json: not a JSON file"),
    ("{\"relationships\": []}", "relationships.json: expected a list of images"),
    ("[{\"image_id\": 1}]", "relationships.json: image 0 has no 'relationships' list"),
    ("[{\"relationships\": [{\"subject\": {\"name\": \"eye\"}}]}]",
     "relationships.json: image 0, relationship 0: expected 'subject' and 'object'"),
    ("[{\"relationships\": [{\"subject\": {\"name\": [1]}, \"object\": {}}]}]",
     "relationship 0, subject: the name must be a string"),
])
def test_bad_relationships_file(tmp_path, content, message):
    path = tmp_path / "relationships.json"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(DataError, match=message):
        build_relation_graphs(None, str(path))


def test_npz_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    graphs = {name: rng.normal(size=shape) for name, shape in GRAPH_SHAPES.items()}
    path = str(tmp_path / "graphs.npz")
    save_relation_graphs(path, graphs)
    for name, shape in GRAPH_SHAPES.items():
        loaded = load_relation_graph(path, name, shape)
        assert loaded.dtype == np.float64
        np.testing.assert_array_equal(loaded, graphs[name])


def test_npz_errors_name_the_file(tmp_path):
    path = str(tmp_path / "graphs.npz")
    save_relation_graphs(path, {"kpt_surf": np.zeros((17, 25))})
    with pytest.raises(DataError, match=f"{path}: no graph 'part_surf' \\(it holds: kpt_surf\\)"):
        load_relation_graph(path, "part_surf", (15, 25))
    with pytest.raises(DataError, match=f"{path}: graph 'kpt_surf' has shape \\(17, 25\\), expected \\(25, 17\\)"):
        load_relation_graph(path, "kpt_surf", (25, 17))
    with pytest.raises(DataError, match="relation graph file not found: .*missing.npz"):
        load_relation_graph(str(tmp_path / "missing.npz"), "kpt_surf", (17, 25))
    with pytest.raises(DataError, match="graph 'part_surf' has shape \\(14, 25\\), expected \\(15, 25\\)"):
        save_relation_graphs(str(tmp_path / "bad.npz"), {"part_surf": np.zeros((14, 25))})
    assert not (tmp_path / "bad.npz").exists()


class CreatesFile:
    """Pickled, an object whose unpickling calls open(path, "w"): the file appears if a loader runs it."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return open, (self.path, "w")


def test_pickle_given_as_graph_is_refused_unrun(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "kpt_surf_crkg.pkl"
    path.write_bytes(pickle.dumps(CreatesFile(marker)))
    with pytest.raises(DataError, match=f"{path}: not an npz file; convert .* --from-official kpt_surf={path}"):
        load_relation_graph(str(path), "kpt_surf", (17, 25))
    assert not marker.exists()
