"""PoseEstimator: weights loading and its errors, arrays and paths, output format and order."""
import cv2
import numpy as np
import pytest
import torch

from posekit.apis import PoseEstimator
from posekit.config import load_cfg
from posekit.inference.dekr.pipeline import predict_image
from posekit.models import build_model
from posekit.models.dekr import build_rescore_net
from posekit.utils.errors import CheckpointError, DataError

# Small inputs keep the tiny model fast on the CPU; the flip test is the pipeline's business, not the API's.
FAST = ["DATASET.INPUT_SIZE", "128", "DATASET.OUTPUT_SIZE", "32", "TEST.FLIP_TEST", "False"]


@pytest.fixture(scope="module")
def weights(tiny_dekr_weights):
    return tiny_dekr_weights


def tiny_cfg(repo_root, *opts):
    return load_cfg(str(repo_root / "experiments/samples/dekr_tiny_coco.yaml"), FAST + list(map(str, opts)))


@pytest.fixture(scope="module")
def estimator(repo_root, weights):
    return PoseEstimator(tiny_cfg(repo_root, "TEST.MODEL_FILE", weights))


@pytest.fixture(scope="module")
def image_path(samples_dir):
    return samples_dir / "coco/images/val2017/000000196141.jpg"


def test_model_is_the_loaded_network_in_eval_mode_on_the_cpu(estimator, weights):
    assert not estimator.model.training
    assert estimator.rescore_net is None  # RESCORE.VALID False in the sample config
    loaded = build_model(estimator.cfg)
    loaded.load_state_dict(torch.load(weights))
    image = torch.randn(2, 3, 64, 96, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():  # the estimator's network is in inference form: the same function as the weights'
        for got, want in zip(estimator.model(image.to(estimator.device)), loaded.eval()(image)):
            torch.testing.assert_close(got.cpu(), want, rtol=1e-4, atol=1e-5)
    if not torch.cuda.is_available():
        assert estimator.device.type == "cpu"


def test_predict_on_array_and_path_gives_the_same_sorted_people(estimator, image_path):
    image = cv2.cvtColor(cv2.imread(str(image_path)), cv2.COLOR_BGR2RGB)
    people, from_path = estimator.predict_batch([image, image_path])
    assert people
    scores = [person["score"] for person in people]
    assert scores == sorted(scores, reverse=True)
    for person in people:
        assert isinstance(person["score"], float)
        assert person["keypoints"].dtype == np.float32 and person["keypoints"].shape == (17, 3)
    poses, raw_scores = predict_image(estimator.model, image, estimator.cfg, estimator.keypoint_set)
    assert scores == pytest.approx(sorted(raw_scores.tolist(), reverse=True))
    best = int(np.argmax(raw_scores))
    # predict_batch runs both images as one network batch, whose float rounding may differ from batch 1's.
    np.testing.assert_allclose(people[0]["keypoints"], poses[best], rtol=1e-5, atol=1e-5)

    assert len(from_path) == len(people)
    for a, b in zip(from_path, people):
        assert a["score"] == b["score"]
        assert np.array_equal(a["keypoints"], b["keypoints"])


def test_unreadable_image_path_names_the_file(estimator, tmp_path):
    missing = tmp_path / "missing.jpg"
    with pytest.raises(DataError, match="missing.jpg"):
        estimator.predict(missing)
    garbage = tmp_path / "garbage.jpg"
    garbage.write_bytes(b"not an image")
    with pytest.raises(DataError, match="garbage.jpg"):
        estimator.predict(str(garbage))


@pytest.mark.parametrize("bad", [np.zeros((8, 8, 3), np.float32), np.zeros((8, 8), np.uint8), [[0, 0, 0]]])
def test_bad_image_arrays_are_rejected(estimator, bad):
    with pytest.raises(DataError, match="uint8"):
        estimator.predict(bad)


def test_missing_weights_are_clear_checkpoint_errors(repo_root, tmp_path):
    with pytest.raises(CheckpointError, match="TEST.MODEL_FILE"):
        PoseEstimator(tiny_cfg(repo_root))
    with pytest.raises(CheckpointError, match="nowhere.pth"):
        PoseEstimator(tiny_cfg(repo_root, "TEST.MODEL_FILE", tmp_path / "nowhere.pth"))


def test_rescore_net_is_loaded_only_when_valid(repo_root, weights, tmp_path, caplog):
    # Without the file (the seed's demo command with only the pose model): no rescoring, said in one line.
    estimator = PoseEstimator(tiny_cfg(repo_root, "TEST.MODEL_FILE", weights, "RESCORE.VALID", "True",
                                       "RESCORE.MODEL_FILE", tmp_path / "no_rescore.pth"))
    assert estimator.rescore_net is None
    said = [record.getMessage() for record in caplog.records if "rescore" in record.getMessage()]
    assert len(said) == 1 and "no_rescore.pth not found: poses are not rescored" in said[0]
    broken = tmp_path / "broken.pth"
    broken.write_bytes(b"not weights")
    with pytest.raises(CheckpointError, match="RESCORE.MODEL_FILE"):
        PoseEstimator(tiny_cfg(repo_root, "TEST.MODEL_FILE", weights, "RESCORE.VALID", "True",
                               "RESCORE.MODEL_FILE", broken))
    cfg = tiny_cfg(repo_root)
    rescore_file = tmp_path / "rescore.pth"
    torch.save(build_rescore_net(cfg).state_dict(), rescore_file)
    estimator = PoseEstimator(tiny_cfg(repo_root, "TEST.MODEL_FILE", weights, "RESCORE.VALID", "True",
                                       "RESCORE.MODEL_FILE", rescore_file))
    assert estimator.rescore_net is not None and not estimator.rescore_net.training
