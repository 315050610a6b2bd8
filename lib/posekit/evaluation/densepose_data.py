"""Inputs of the DensePose evaluation (densepose.md 6.1, 6.5): the SMPL chart atlas and geodesic distances read
from the user's data folder, and the PNG-packed I/U/V label maps of result records."""
import os
from dataclasses import dataclass
from typing import Any, List, Mapping, Sequence

import numpy as np
import scipy.io

from ..models.safe_pickle import load_safe_pickle
from ..utils.errors import CheckpointError, DataError
from .densepose_results import decode_png

NUM_CHARTS = 24
DATA_FILES = ("SMPL_subdiv.mat", "SMPL_SUBDIV_TRANSFORM.mat", "Pdist_matrix.pkl")


@dataclass
class GeodesicData:
    """The chart atlas of the subdivided SMPL mesh and its packed pairwise geodesic distances."""

    chart_uv: List[np.ndarray]  # per chart c = 1..24 (index c - 1): (n_c, 2) U, V of its atlas entries
    chart_entries: List[np.ndarray]  # per chart: the 1-based atlas ids of those entries
    entry_vertex: np.ndarray  # (N,) 1-based id of the mesh vertex every atlas entry stands for
    pdist: np.ndarray  # flat: distance of vertices lo < hi (0-based) at hi * (hi - 1) / 2 + lo


def data_file_paths(data_dir: str) -> List[str]:
    """The three evaluation files in ``data_dir``; DataError naming the first one missing."""
    paths = [os.path.join(data_dir, name) for name in DATA_FILES]
    for path in paths:
        if not os.path.isfile(path):
            raise DataError(f"{path}: DensePose evaluation file not found (download {os.path.basename(path)} "
                            f"from the DensePose evaluation data into {data_dir})")
    return paths


def _load_mat_fields(path: str, fields: Sequence[str]) -> List[np.ndarray]:
    """The named arrays of a MATLAB file, flattened; DataError naming the file or the missing field."""
    try:
        content = scipy.io.loadmat(path)
    except Exception as err:  # scipy raises ValueError, TypeError, MatReadError... on a damaged file
        raise DataError(f"{path}: not a readable MATLAB file ({err})") from None
    arrays = []
    for field in fields:
        if field not in content:
            raise DataError(f"{path}: missing field '{field}'")
        arrays.append(np.asarray(content[field]).reshape(-1))
    return arrays


def _load_pdist(path: str, num_vertices: int) -> np.ndarray:
    """The packed distance column of ``Pdist_matrix.pkl`` as a flat view (no copy of the 1.5 GB array)."""
    try:
        content = load_safe_pickle(path)
    except CheckpointError as err:
        raise DataError(f"{path}: field 'Pdist_matrix' unreadable, the file may be truncated ({err})") from None
    if not isinstance(content, Mapping) or "Pdist_matrix" not in content:
        raise DataError(f"{path}: expected a pickled dict with field 'Pdist_matrix'")
    pdist = np.asarray(content["Pdist_matrix"]).reshape(-1)
    needed = num_vertices * (num_vertices - 1) // 2
    if pdist.size < needed:
        raise DataError(f"{path}: field 'Pdist_matrix' holds {pdist.size} distances, expected at least "
                        f"{needed} (all pairs of {num_vertices} vertices); the file may be truncated")
    return pdist


def load_geodesic_data(data_dir: str) -> GeodesicData:
    """Read SMPL_subdiv.mat, SMPL_SUBDIV_TRANSFORM.mat and Pdist_matrix.pkl from ``data_dir``."""
    subdiv_path, transform_path, pdist_path = data_file_paths(data_dir)
    u, v, charts = _load_mat_fields(subdiv_path, ("U_subdiv", "V_subdiv", "Part_ID_subdiv"))
    (vertex,) = _load_mat_fields(transform_path, ("index",))
    if not len(u) == len(v) == len(charts):
        raise DataError(f"{subdiv_path}: fields 'U_subdiv', 'V_subdiv', 'Part_ID_subdiv' differ in length")
    if len(vertex) < len(u):
        raise DataError(f"{transform_path}: field 'index' has {len(vertex)} entries, {subdiv_path} has "
                        f"{len(u)} atlas entries; expected one vertex index per atlas entry")
    charts = charts.astype(np.int64)
    vertex = vertex.astype(np.int64)
    entries = np.arange(1, len(u) + 1)
    uv = np.stack([u, v], axis=1).astype(np.float64)
    masks = [charts == chart for chart in range(1, NUM_CHARTS + 1)]
    return GeodesicData(chart_uv=[uv[mask] for mask in masks], chart_entries=[entries[mask] for mask in masks],
                        entry_vertex=vertex, pdist=_load_pdist(pdist_path, int(vertex.max(initial=0))))


def decode_labels_uv(record: Mapping[str, Any]) -> np.ndarray:
    """The (3, h, w) uint8 I, U*255, V*255 array of a result record, in any of the accepted forms.

    Forms: detectron2's ``"densepose": {"shape_chw", "labels_uv_str"}``, the COCO challenge's ``"uv_shape"`` +
    ``"uv_data"``, or ``"labels_uv_uint8"`` holding the array itself.
    """
    if "labels_uv_uint8" in record:
        array = np.asarray(record["labels_uv_uint8"])
        if array.ndim != 3 or array.shape[0] != 3:
            raise DataError(f"result record: field 'labels_uv_uint8' must be (3, h, w), got {array.shape}")
        return array.astype(np.uint8, copy=False)
    if isinstance(record.get("densepose"), Mapping):
        packed = record["densepose"]
        if "shape_chw" in packed and "labels_uv_str" in packed:
            return decode_png(packed["labels_uv_str"], packed["shape_chw"], "result field 'densepose'")
    if "uv_shape" in record and "uv_data" in record:
        return decode_png(record["uv_data"], record["uv_shape"], "result field 'uv_data'")
    raise DataError("result record: expected 'densepose' {'shape_chw', 'labels_uv_str'}, 'uv_shape' + "
                    "'uv_data' or 'labels_uv_uint8'")
