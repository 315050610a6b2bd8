"""DEKR validation's helpers: file naming, default weights, ground-truth subsets."""
import json
from pathlib import Path

from posekit.apis.dekr.validation import evaluation_kind, ground_truth_subset, results_path, with_default_model_file
from posekit.config import load_cfg
from posekit.data import build_test_dataset


def test_results_file_name_and_default_weights(repo_root):
    cfg = load_cfg(str(repo_root / "experiments/samples/dekr_tiny_coco.yaml"), ["DATASET.TEST", "test-dev2017"])
    output = Path("out/run")
    assert results_path(cfg, output) == output / "results" / "keypoints_test-dev2017regression_results.json"
    assert with_default_model_file(cfg, output).TEST.MODEL_FILE == "out/run/model_best.pth.tar"
    given = load_cfg(None, ["TEST.MODEL_FILE", "w.pth"])
    assert with_default_model_file(given, output).TEST.MODEL_FILE == "w.pth"


def test_evaluation_kind_follows_the_test_set_name(repo_root):
    assert evaluation_kind(load_cfg(str(repo_root / "experiments/samples/dekr_tiny_crowdpose.yaml"))) == "crowdpose"
    assert evaluation_kind(load_cfg(str(repo_root / "experiments/samples/dekr_tiny_coco.yaml"))) == "coco"


def test_ground_truth_subset_keeps_only_the_chosen_images(samples_dir, tmp_path):
    gt_json = samples_dir / "coco/annotations/person_keypoints_val2017.json"
    full = json.loads(gt_json.read_text())
    chosen = [full["images"][1]["id"]]
    dataset = build_test_dataset(load_cfg(None, ["DATASET.ROOT", str(samples_dir / "coco")]))
    subset = json.loads(Path(ground_truth_subset(dataset, chosen, tmp_path / "gt.json")).read_text())
    assert [image["id"] for image in subset["images"]] == chosen
    expected_annotations = [ann for ann in full["annotations"] if ann["image_id"] == chosen[0]]
    assert subset["annotations"] == expected_annotations and expected_annotations
    assert subset["categories"] == full["categories"]
