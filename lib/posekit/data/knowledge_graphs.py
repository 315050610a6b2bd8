"""KTN / KTNv2 commonsense knowledge graphs (docs/models/densepose.md §3.6): the relation matrices between the
keypoints, the coarse body parts or the person box and the 24 DensePose surface charts, which initialise KTM.

A graph sums, over (source label, chart): Visual Genome co-occurrence counts, degree-normalised; the GloVe cosine of
the two labels' compound names; the anatomical rules (1 where the source covers the chart); scaled, with a zero
column for the background chart in front. Graphs are kept as npz in the official orientation (source rows x 25
charts, as ``*_crkg.pkl`` store them); the predictors transpose them.
"""
import json
import logging
import os
import zipfile
from dataclasses import dataclass
from typing import Dict, FrozenSet, Iterator, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from ..utils.errors import DataError
from ..utils.io import atomic_write_npz
from .metadata import COCO

logger = logging.getLogger(__name__)

GLOVE_DIM = 300  # glove.6B.300d.txt
# Graph name -> stored shape (sources x background + 24 charts).
GRAPH_SHAPES = {"kpt_surf": (17, 25), "part_surf": (15, 25), "person_surf": (6, 25)}
# The official pickles by file name (KTN v1's kpt_surface_relationships.pkl has the KTNv2 keypoint layout).
OFFICIAL_GRAPH_FILES = {"kpt_surf_crkg.pkl": "kpt_surf", "part_surf_crkg.pkl": "part_surf",
                        "person_surf_crkg.pkl": "person_surf", "kpt_surface_relationships.pkl": "kpt_surf"}

ALL_SIDES = frozenset({"back", "front", "left", "right"})
# Chart 1..24 as (side, body word), the generator's names; its head sides are swapped with respect to DensePose's,
# which changes nothing since every source treats both sides alike.
CHARTS = (("back", "torso"), ("front", "torso"), ("right", "hand"), ("left", "hand"), ("left", "foot"),
          ("right", "foot")) + (("right", "leg"), ("left", "leg")) * 4 + (("left", "arm"), ("right", "arm")) * 4 + (
          ("left", "head"), ("right", "head"))
# Visual Genome columns, and the words counted as each (densepose.md §3.6 (a)).
SURFACE_WORDS = ("torso", "hand", "foot", "leg", "arm", "head")
SURFACE_SYNONYMS = {"torso": ("body", "shoulder", "hip"), "hand": ("glove", "gesture"), "foot": ("ankle",),
                    "arm": ("elbow",), "head": ("brain", "neck")}
KEYPOINT_WORDS = ("nose", "eye", "ear", "shoulder", "elbow", "wrist", "hip", "knee", "ankle")
KEYPOINT_SYNONYMS = {"shoulder": ("torso", "body"), "elbow": ("arm",), "wrist": ("hand", "forearm"),
                     "hip": ("buttocks", "arse", "ass", "thigh"), "knee": ("lap", "crus", "shank", "shin"),
                     "ankle": ("ankle", "foot")}
PART_NAMES = ("torso", "right_hand", "left_hand", "left_foot", "right_foot", "upper_right_leg", "upper_left_leg",
              "lower_right_leg", "lower_left_leg", "upper_left_arm", "upper_right_arm", "lower_left_arm",
              "lower_right_arm", "head")
# Anatomical rules: 1-based source row -> the 1-based charts it covers.
PART_RULES = {1: (1, 2), 2: (3,), 3: (4,), 4: (5,), 5: (6,), 6: (7, 9), 7: (8, 10), 8: (11, 13), 9: (12, 14),
              10: (15, 17), 11: (16, 18), 12: (19, 21), 13: (20, 22), 14: (23, 24)}
KEYPOINT_RULES = {1: (23, 24), 2: (23, 24), 3: (23, 24), 4: (23, 24), 5: (23, 24), 6: (1, 2, 15, 17),
                  7: (1, 2, 16, 18), 8: (15, 17, 19, 21), 9: (16, 18, 20, 22), 10: (4, 19, 21), 11: (3, 20, 22),
                  12: (1, 2, 8, 10), 13: (1, 2, 7, 9), 14: (8, 10, 12, 14), 15: (7, 9, 11, 13), 16: (5, 12, 14),
                  17: (6, 11, 13)}


@dataclass(frozen=True)
class SourceLabel:
    """A graph row: the words whose GloVe vectors are concatenated, the Visual Genome word whose counts it takes,
    and the chart sides those counts go to."""

    words: Tuple[str, ...]
    base: str
    sides: FrozenSet[str] = ALL_SIDES


@dataclass(frozen=True)
class GraphSpec:
    """How one graph is built: its rows, vocabularies, rules, scale and background layout."""

    name: str
    sources: Tuple[SourceLabel, ...]
    chart_prefix: Tuple[str, ...]  # words before a chart's (side, word) in its GloVe name
    source_words: Tuple[str, ...]  # rows of the Visual Genome count table
    source_synonyms: Mapping[str, Tuple[str, ...]]
    rules: Mapping[int, Tuple[int, ...]]
    scale: float
    background_row: bool = False
    repeat_rows: int = 1


def _keypoint_label(name: str) -> SourceLabel:
    """nose -> (middle, nose); left_eye -> (left, eye)."""
    words = ("middle", name) if "_" not in name else tuple(name.split("_"))
    return SourceLabel(words, words[-1])


def _part_label(name: str) -> SourceLabel:
    """torso -> (full, middle, torso); right_hand -> (full, right, hand); upper_*/lower_* limbs take their counts
    on the back/left or the front/right charts only, the official expansion (densepose.md §3.6 (a))."""
    words = tuple(name.split("_"))
    if len(words) == 3:
        return SourceLabel(words, words[-1], frozenset({"back", "left"} if words[0] == "upper" else {"front", "right"}))
    return SourceLabel(("full", "middle") + words if len(words) == 1 else ("full",) + words, words[-1])


GRAPHS = (
    GraphSpec("kpt_surf", tuple(map(_keypoint_label, COCO.joint_names)), (), KEYPOINT_WORDS, KEYPOINT_SYNONYMS,
              KEYPOINT_RULES, 0.3),
    GraphSpec("part_surf", tuple(map(_part_label, PART_NAMES)), ("full",), SURFACE_WORDS, SURFACE_SYNONYMS,
              PART_RULES, 0.3, background_row=True),
    GraphSpec("person_surf", (SourceLabel(("full", "middle", "person"), "person"),), ("full",), ("person",),
              {"person": ("body", "human")}, {}, 0.5, repeat_rows=6),
)


def glove_words(specs: Sequence[GraphSpec] = GRAPHS) -> FrozenSet[str]:
    """Every word whose GloVe vector the graphs need."""
    words = {word for spec in specs for source in spec.sources for word in source.words}
    return frozenset(words | {word for spec in specs for chart in CHARTS for word in spec.chart_prefix + chart})


def read_glove_vectors(path: str, words: FrozenSet[str], dim: int = GLOVE_DIM) -> Dict[str, np.ndarray]:
    """The float64 vectors of ``words`` from a GloVe text file ("word v1 ... v_dim" lines), read line by line and
    stopping once all are found; DataError for a missing word or a line of another width."""
    if not os.path.isfile(path):
        raise DataError(f"GloVe file not found: {path}")
    vectors: Dict[str, np.ndarray] = {}
    with open(path, encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, 1):
            word, _, rest = line.rstrip("\r\n").partition(" ")
            if word not in words or word in vectors:
                continue
            values = rest.split()
            if len(values) != dim:
                raise DataError(f"{path}:{number}: the vector of '{word}' has {len(values)} values, expected {dim}")
            try:
                vectors[word] = np.array(values, dtype=np.float64)
            except ValueError:
                raise DataError(f"{path}:{number}: the vector of '{word}' is not {dim} numbers") from None
            if len(vectors) == len(words):
                break
    missing = sorted(words - vectors.keys())
    if missing:
        raise DataError(f"{path}: no vector for {', '.join(missing)} (a GloVe file such as glove.6B.300d.txt has them)")
    return vectors


def _entity_name(entity: object, where: str) -> Optional[str]:
    """An object's name as the generator reads it: ``name``, else the first of ``names``, else None."""
    if not isinstance(entity, dict):
        raise DataError(f"{where}: expected an object with 'name' or 'names'")
    name = entity["name"] if "name" in entity else entity["names"][0] if entity.get("names") else None
    if name is not None and not isinstance(name, str):
        raise DataError(f"{where}: the name must be a string, got {type(name).__name__}")
    return name


def relationship_word_sets(path: str) -> Iterator[FrozenSet[Optional[str]]]:
    """{subject name, object name} of every relationship in a Visual Genome ``relationships.json``."""
    if not os.path.isfile(path):
        raise DataError(f"Visual Genome relationships file not found: {path}")
    try:
        with open(path, encoding="utf-8") as handle:
            images = json.load(handle)
    except (ValueError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: not a JSON file ({err})") from None
    if not isinstance(images, list):
        raise DataError(f"{path}: expected a list of images with 'relationships', got {type(images).__name__}")
    for index, image in enumerate(images):
        relations = image.get("relationships") if isinstance(image, dict) else None
        if not isinstance(relations, list):
            raise DataError(f"{path}: image {index} has no 'relationships' list")
        for number, relation in enumerate(relations):
            where = f"{path}: image {index}, relationship {number}"
            if not isinstance(relation, dict) or "subject" not in relation or "object" not in relation:
                raise DataError(f"{where}: expected 'subject' and 'object'")
            yield frozenset((_entity_name(relation["subject"], f"{where}, subject"),
                             _entity_name(relation["object"], f"{where}, object")))


def _word_columns(words: Sequence[str], synonyms: Mapping[str, Tuple[str, ...]]) -> Tuple[Dict, Dict]:
    """(word -> its index, synonym -> the index of the word it stands for)."""
    index = {word: i for i, word in enumerate(words)}
    return index, {synonym: index[word] for word, group in synonyms.items() for synonym in group}


def count_cooccurrences(word_sets: Iterator[FrozenSet[Optional[str]]],
                        specs: Sequence[GraphSpec] = GRAPHS) -> Dict[str, np.ndarray]:
    """Per graph, the (source word x surface word) counts of the generator: for each relationship the first rule
    that applies counts every pair it finds: source & surface word, source synonym & surface word, source & surface
    synonym (densepose.md §3.6 (a); "hand" and "foot" are both surface words and keypoint synonyms)."""
    surfaces, surface_synonyms = _word_columns(SURFACE_WORDS, SURFACE_SYNONYMS)
    rules = []
    for spec in specs:
        sources, source_synonyms = _word_columns(spec.source_words, spec.source_synonyms)
        rules.append(((sources, surfaces), (source_synonyms, surfaces), (sources, surface_synonyms)))
    tables = [np.zeros((len(spec.source_words), len(SURFACE_WORDS))) for spec in specs]
    for words in word_sets:
        for table, spec_rules in zip(tables, rules):
            for row_of, column_of in spec_rules:
                rows = [row_of[word] for word in words if word in row_of]
                columns = [column_of[word] for word in words if word in column_of]
                if rows and columns:
                    for row in rows:
                        for column in columns:
                            table[row, column] += 1
                    break
    return {spec.name: table for spec, table in zip(specs, tables)}


def _divide_or_zero(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator, 0 where the denominator is 0."""
    return np.divide(numerator, denominator, out=np.zeros(np.broadcast(numerator, denominator).shape),
                     where=denominator != 0)


def degree_normalize(counts: np.ndarray) -> np.ndarray:
    """counts / sqrt(row sum x column sum), 0 for an empty row or column (0/0: NaN in the official script)."""
    return _divide_or_zero(counts, np.sqrt(np.outer(counts.sum(axis=1), counts.sum(axis=0))))


def expand_counts(spec: GraphSpec, counts: np.ndarray) -> np.ndarray:
    """The coarse (source word x surface word) counts spread over the graph's rows and the 24 charts."""
    rows = [spec.source_words.index(source.base) for source in spec.sources]
    columns = [SURFACE_WORDS.index(word) for _, word in CHARTS]
    sides = np.array([[side in source.sides for side, _ in CHARTS] for source in spec.sources])
    return np.where(sides, counts[np.ix_(rows, columns)], 0.0)


def label_cosine(spec: GraphSpec, vectors: Mapping[str, np.ndarray]) -> np.ndarray:
    """Cosine similarity of each row's concatenated word vectors with each chart's (rows x 24)."""
    sources = np.stack([np.concatenate([vectors[word] for word in source.words]) for source in spec.sources])
    charts = np.stack([np.concatenate([vectors[word] for word in spec.chart_prefix + chart]) for chart in CHARTS])
    norms = np.outer(np.linalg.norm(sources, axis=1), np.linalg.norm(charts, axis=1))
    return _divide_or_zero(sources @ charts.T, norms)


def rule_matrix(spec: GraphSpec) -> np.ndarray:
    """1 where a row anatomically covers a chart (rows x 24; all 0 for the person graph)."""
    rules = np.zeros((len(spec.sources), len(CHARTS)))
    for row, charts in spec.rules.items():
        rules[row - 1, [chart - 1 for chart in charts]] = 1
    return rules


def combine_terms(spec: GraphSpec, counts: Optional[np.ndarray], vectors: Optional[Mapping[str, np.ndarray]]
                  ) -> np.ndarray:
    """scale x (normalised counts + cosine + rules), a missing source's term taken as 0, in the stored layout."""
    rules = rule_matrix(spec)
    normalized = degree_normalize(expand_counts(spec, counts)) if counts is not None else np.zeros_like(rules)
    cosine = label_cosine(spec, vectors) if vectors is not None else np.zeros_like(rules)
    graph = np.hstack([np.zeros((len(rules), 1)), (normalized + cosine + rules) * spec.scale])
    if spec.background_row:
        graph = np.vstack([np.zeros((1, graph.shape[1])), graph])
    return np.repeat(graph, spec.repeat_rows, axis=0)


def build_relation_graphs(glove_path: Optional[str] = None, relationships_path: Optional[str] = None,
                          glove_dim: int = GLOVE_DIM) -> Dict[str, np.ndarray]:
    """The three graphs from a GloVe file and a Visual Genome ``relationships.json``; either may be None, and its
    term is then left out (without both: the rules x 0.3, a zero person graph), which is logged in one line."""
    vectors = read_glove_vectors(glove_path, glove_words(), glove_dim) if glove_path else None
    counts = count_cooccurrences(relationship_word_sets(relationships_path)) if relationships_path else None
    missing = [name for name, path in (("GloVe", glove_path), ("Visual Genome", relationships_path)) if not path]
    if len(missing) == 2:
        logger.warning("knowledge graphs built without GloVe or Visual Genome: the anatomical rules x 0.3 only "
                       "(the person graph, which has no rules, is zero)")
    elif missing:
        logger.warning("knowledge graphs built without %s: its term is left out", missing[0])
    return {spec.name: combine_terms(spec, counts[spec.name] if counts else None, vectors) for spec in GRAPHS}


def checked_graph(array: object, name: str, source: str, shape: Optional[Tuple[int, ...]] = None) -> np.ndarray:
    """``array`` as a float64 matrix of ``shape`` (default: the graph's stored shape), finite; DataError naming
    ``source`` otherwise."""
    shape = tuple(shape) if shape is not None else GRAPH_SHAPES.get(name)
    if shape is None:
        raise DataError(f"{source}: unknown graph '{name}', expected one of {', '.join(GRAPH_SHAPES)}")
    if not isinstance(array, np.ndarray) or not (np.issubdtype(array.dtype, np.floating)
                                                 or np.issubdtype(array.dtype, np.integer)):
        raise DataError(f"{source}: graph '{name}' must be a numeric NumPy array, got {type(array).__name__}")
    if array.shape != shape:
        raise DataError(f"{source}: graph '{name}' has shape {array.shape}, expected {shape} "
                        f"(sources x background + 24 charts)")
    bad = int(np.count_nonzero(~np.isfinite(array)))
    if bad:
        raise DataError(f"{source}: graph '{name}' has {bad} NaN or infinite entries (the official generator's 0/0 "
                        f"bug); rebuild it with tools/build_knowledge_graph.py --glove ... --relationships ...")
    return array.astype(np.float64)


def save_relation_graphs(path: str, graphs: Mapping[str, np.ndarray]) -> None:
    """Write named graphs (checked against their stored shapes) to an npz file, atomically."""
    atomic_write_npz(path, {name: checked_graph(graph, name, path) for name, graph in graphs.items()})


def load_relation_graph(path: str, name: str, shape: Tuple[int, ...]) -> np.ndarray:
    """Graph ``name`` (float64, ``shape`` in the stored orientation, e.g. (17, 25)) from an npz file written by
    ``save_relation_graphs``; DataError naming the file for a missing file or key, a pickle, or a wrong shape."""
    if not os.path.isfile(path):
        raise DataError(f"relation graph file not found: {path}")
    if not zipfile.is_zipfile(path):
        raise DataError(f"{path}: not an npz file; convert an official .pkl graph with "
                        f"tools/build_knowledge_graph.py --from-official {name}={path} --output GRAPHS.npz")
    try:
        with np.load(path, allow_pickle=False) as graphs:
            if name not in graphs.files:
                raise DataError(f"{path}: no graph '{name}' (it holds: {', '.join(graphs.files) or 'nothing'})")
            array = graphs[name]
    except (ValueError, OSError, zipfile.BadZipFile) as err:
        raise DataError(f"{path}: unreadable npz file ({err})") from None
    return checked_graph(array, name, path, shape)


def official_graph_name(path: str) -> str:
    """The graph an official pickle holds, by its file name (kpt_surf_crkg.pkl -> kpt_surf ...)."""
    name = OFFICIAL_GRAPH_FILES.get(os.path.basename(path))
    if name is None:
        raise DataError(f"{path}: not an official graph file name ({', '.join(OFFICIAL_GRAPH_FILES)}); "
                        f"name the graph as NAME=PATH with NAME one of {', '.join(GRAPH_SHAPES)}")
    return name


def official_graph_sources(items: Sequence[str]) -> List[Tuple[str, str]]:
    """(graph name, path) for each ``PATH`` (official file name) or ``NAME=PATH``, one file per graph."""
    pairs = [tuple(item.split("=", 1)) if "=" in item else (official_graph_name(item), item) for item in items]
    names = [name for name, _ in pairs]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise DataError(f"more than one file for graph {', '.join(repeated)}: {', '.join(items)}")
    return pairs
