"""KTN's knowledge transfer machines (densepose.md 3.4, 3.5, 12): the generated I kernel on small hand-made
weights against a direct computation, eval-mode caching, and relation matrices of the wrong shape."""
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from posekit.models.ktn import DensePoseKptRelationPredictor, KTNv2Predictor, relation_parameter
from posekit.utils.errors import ConfigError

pytestmark = pytest.mark.usefixtures("one_thread")
EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"

C, K, PATCHES, CHARTS, D = 2, 3, 3, 4, 5  # head channels, keypoints, charts (+ background), box feature width


def randomise(module, seed=0):
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in module.parameters():
            param.copy_(torch.randn(param.shape, generator=generator))
    return module.double()


def mlp(x, layers):
    """Linear, LeakyReLU(0.02), Linear, written out."""
    hidden = x @ layers[0].weight.T + layers[0].bias
    hidden = torch.where(hidden > 0, hidden, 0.02 * hidden)
    return hidden @ layers[2].weight.T + layers[2].bias


def rows_of(weight):
    """Row n = classifier n's weights in (in-channel, kh, kw) order, by explicit loops."""
    rows = torch.zeros(weight.shape[1], weight.shape[0] * 16, dtype=weight.dtype)
    for n in range(weight.shape[1]):
        for i in range(weight.shape[0]):
            for kh in range(4):
                for kw in range(4):
                    rows[n, i * 16 + kh * 4 + kw] = weight[i, n, kh, kw]
    return rows


def as_kernel(rows):
    """(charts, C*16) -> transposed-conv kernel (C, charts, 4, 4), by explicit loops."""
    kernel = torch.zeros(C, rows.shape[0], 4, 4, dtype=rows.dtype)
    for c in range(rows.shape[0]):
        for i in range(C):
            for kh in range(4):
                for kw in range(4):
                    kernel[i, c, kh, kw] = rows[c, i * 16 + kh * 4 + kw]
    return kernel


def ktm_v1():
    relation = np.arange(CHARTS * K, dtype=np.float32).reshape(CHARTS, K) / 10
    return randomise(DensePoseKptRelationPredictor(C, PATCHES, K, 4, 2, 1, relation))


def ktm_v2():
    relations = {"kpt_surf": np.zeros((CHARTS, K)), "part_surf": np.zeros((CHARTS, 15)), "person_surf": np.zeros((CHARTS, 6))}
    return randomise(KTNv2Predictor(C, PATCHES, K, 4, 2, 2, D, relations))


def test_ktm_v1_kernel_and_outputs_equal_the_direct_computation():
    predictor = ktm_v1()
    R, W = predictor.kpt_surface_transfer_matrix, predictor.body_kpt_weight
    expected = as_kernel(mlp(R @ rows_of(W), predictor.kpt_surface_transformer))
    torch.testing.assert_close(predictor.generate_kernel(), expected)
    head = torch.randn(2, C, 3, 3, dtype=torch.float64)
    outputs = predictor(head)
    fine = F.interpolate(F.conv_transpose2d(head, expected, stride=2, padding=1), scale_factor=2, mode="bilinear")
    torch.testing.assert_close(outputs["fine_segm"], fine)
    assert outputs["fine_segm"].shape == (2, CHARTS, 12, 12) and outputs["body_mask"].shape == (2, 2, 12, 12)
    # K: the keypoint classifier itself, x2 by its deconv, no further upsampling with KPT_UP_SCALE 1.
    torch.testing.assert_close(outputs["keypoints"], F.conv_transpose2d(head, W, predictor.body_kpt_bias, stride=2,
                                                                        padding=1))


def test_ktm_v2_kernel_mixes_keypoint_box_and_part_sources_in_that_order():
    predictor = ktm_v2()
    box = torch.randn(6, D, dtype=torch.float64)
    sources = torch.cat([predictor.kpt_crgk_matrix @ rows_of(predictor.k_lowres.weight),
                         predictor.bbox_crgk_matrix @ box,
                         predictor.part_crgk_matrix @ rows_of(predictor.ann_index_lowres.weight)], dim=1)
    expected = as_kernel(mlp(sources, predictor.parameter_transformer))
    torch.testing.assert_close(predictor.generate_kernel(box), expected)
    outputs = predictor(torch.randn(1, C, 3, 3, dtype=torch.float64), box)
    assert set(outputs) == {"body_mask", "fine_segm", "u", "v", "coarse_segm", "keypoints"}
    assert outputs["coarse_segm"].shape[1] == 15 and outputs["keypoints"].shape == (1, K, 12, 12)


def test_ktm_v2_gradient_reaches_keypoint_and_part_classifiers_but_not_the_box_head():
    predictor = ktm_v2()
    box = torch.randn(6, D, dtype=torch.float64, requires_grad=True)
    predictor.generate_kernel(box).sum().backward()
    assert box.grad is None
    for param in (predictor.k_lowres.weight, predictor.ann_index_lowres.weight, predictor.kpt_crgk_matrix,
                  predictor.part_crgk_matrix, predictor.bbox_crgk_matrix):
        assert param.grad is not None and param.grad.abs().sum() > 0


def counted(module):
    calls = []
    module.register_forward_hook(lambda *args: calls.append(1))
    return calls


@pytest.mark.parametrize("make, transformer", [(ktm_v1, "kpt_surface_transformer"),
                                               (ktm_v2, "parameter_transformer")])
def test_eval_mode_caches_the_generated_kernel_until_train_or_load(make, transformer):
    predictor = make()
    calls = counted(getattr(predictor, transformer))
    args = (torch.randn(3, C, 3, 3, dtype=torch.float64),) + ((torch.randn(6, D, dtype=torch.float64),)
                                                             if isinstance(predictor, KTNv2Predictor) else ())
    trained = predictor(*args)["fine_segm"]
    predictor(*args)
    assert len(calls) == 2  # training: once per forward
    predictor.eval()
    first, second = predictor(*args)["fine_segm"], predictor(*args)["fine_segm"]
    assert len(calls) == 3  # eval: computed once
    assert torch.equal(first, second) and torch.allclose(first, trained)
    predictor.train()
    predictor.eval()
    predictor(*args)
    assert len(calls) == 4  # train() forgets the cache
    state = {name: value + 0.5 for name, value in predictor.state_dict().items()}
    predictor.load_state_dict(state)
    changed = predictor(*args)["fine_segm"]
    assert len(calls) == 5 and not torch.allclose(changed, first)  # loading forgets it too


def test_relation_matrix_of_the_wrong_shape_names_its_key():
    with pytest.raises(ConfigError, match=r"KPT_SURF_RELATION_DIR: relation matrix of shape \(17, 25\), "
                                          r"expected \(25, 17\)"):
        relation_parameter(np.zeros((17, 25)), 17, 25, "MODEL.ROI_DENSEPOSE_HEAD.KPT_SURF_RELATION_DIR")


def test_a_graph_file_of_the_wrong_shape_is_named_in_the_error(tmp_path):
    from posekit.config import load_cfg
    from posekit.models import build_model
    from posekit.utils.errors import DataError
    graph = tmp_path / "kpt_surf_crkg.npz"
    np.savez(graph, kpt_surf=np.zeros((25, 17)))  # transposed: the model's orientation, not the stored one
    cfg = load_cfg(str(EXPERIMENTS / "samples/ktn_tiny.yaml"), ["MODEL.ROI_DENSEPOSE_HEAD.KPT_SURF_RELATION_DIR", str(graph)])
    with pytest.raises(DataError, match=rf"{graph}: graph 'kpt_surf' has shape \(25, 17\), expected \(17, 25\)"):
        build_model(cfg)


def test_without_graph_files_the_matrices_start_from_the_anatomical_rules():
    from posekit.config import load_cfg
    from posekit.models import build_model
    predictor = build_model(load_cfg(str(EXPERIMENTS / "samples/ktnv2_tiny.yaml"))).roi_heads.densepose_predictor
    kpt = predictor.kpt_crgk_matrix  # charts x keypoints
    # The left wrist (keypoint 10, 1-based) covers charts 4, 19 and 21: 0.3 there, 0 elsewhere, 0 for background.
    assert torch.nonzero(kpt[:, 9]).flatten().tolist() == [4, 19, 21] and torch.allclose(kpt[[4, 19, 21], 9],
                                                                                         torch.tensor(0.3))
    assert not predictor.bbox_crgk_matrix.any()  # the person graph has no rules
