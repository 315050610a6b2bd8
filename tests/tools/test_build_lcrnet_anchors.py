"""tools/build_lcrnet_anchors.py on the Human3.6M sample json: four people, four clusters, each its own pose."""
import importlib.util
import json
from pathlib import Path

import numpy as np

from posekit.models.lcrnet.anchors import load_anchors

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "data" / "samples" / "h36m" / "h36m_lcrnet_samples.json"
J = 13


def test_each_person_is_its_own_anchor_with_the_copied_ppi_params(tmp_path):
    spec = importlib.util.spec_from_file_location("build_lcrnet_anchors", REPO / "tools" / "build_lcrnet_anchors.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    out = tmp_path / "h36m_anchors.npz"
    released = REPO / "data" / "lcrnet" / "DEMO_ECCV18_anchors.npz"
    assert tool.main(["--json", str(SAMPLE), "--full-body", "4", "--out", str(out), "--ppi-from", str(released)]) == 0
    anchors = load_anchors(out.with_suffix(".json"), num_joints=J)
    assert (anchors.num_classes, anchors.num_full_body) == (8, 4)
    assert anchors.ppi_params == load_anchors(released).ppi_params
    # Each pose normalised in its own box, by hand: x' = (x - x0) / w, y' = (y - y0) / h, 3D as is.
    expected = []
    for ann in json.loads(SAMPLE.read_text())["annotations"]:
        pose = np.asarray(ann["pose"], np.float64)
        x0, y0, w, h = ann["bbox"]
        expected.append(np.concatenate([(pose[:J] - x0) / w, (pose[J:2 * J] - y0) / h, pose[2 * J:]]))
    full = anchors.poses[:4].astype(np.float64)
    order = [int(np.abs(full - row).max(axis=1).argmin()) for row in expected]
    assert sorted(order) == [0, 1, 2, 3]
    np.testing.assert_allclose(full[order], np.stack(expected), atol=1e-6)
