"""AMANet's modules (densepose.md 4.1-4.5): the multi-level pooler, the shared-stack head and its channel attention,
the predictors (AMAv2's generated kernel and relation matrices, the relation-parts classifier file), the IA loss;
each against a direct computation written here."""
import pickle

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from posekit.data.knowledge_graphs import save_relation_graphs
from posekit.models.amanet import (AMAPredictor, DensePoseAMAHead, MultiROIPooler, RelationPartsAMAPredictor,
                                   TaskTransformerAMAPredictorV2, ia_losses, level_sizes)
from posekit.models.amanet.predictor import load_kpt_classifier
from posekit.ops import roi_align
from posekit.utils.errors import CheckpointError, ConfigError

pytestmark = pytest.mark.usefixtures("one_thread")

STRIDES = (4, 8, 16, 32)


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def leaky(x, slope=0.02):
    return np.where(x > 0, x, slope * x)


@pytest.mark.parametrize("heatmap, sizes", [(64, [32, 16, 16, 8]), (56, [28, 14, 14, 7])])
def test_pooler_pools_every_box_from_every_level_at_its_size(heatmap, sizes):
    """AMAv2 (heatmap 64) and AMA v1 (56) sizes; each level is ROIAlign (not aligned, 2 samples) of all boxes."""
    assert level_sizes(heatmap // 2) == sizes
    torch.manual_seed(0)
    features = [torch.randn(2, 3, 96 // s, 128 // s) for s in STRIDES]
    boxes = [torch.tensor([[4.0, 6.0, 60.0, 90.0]]), torch.tensor([[10.0, 2.0, 120.0, 40.0], [0.0, 0.0, 9.0, 9.0]])]
    pooled = MultiROIPooler(sizes, [1 / s for s in STRIDES], 2, "ROIAlign")(features, boxes)
    rois = torch.tensor([[0, 4.0, 6.0, 60.0, 90.0], [1, 10.0, 2.0, 120.0, 40.0], [1, 0.0, 0.0, 9.0, 9.0]])
    for feature, size, stride, result in zip(features, sizes, STRIDES, pooled):
        assert result.shape == (3, 3, size, size)
        torch.testing.assert_close(result, roi_align(feature, rois, (size, size), 1 / stride, 2, False))


def test_shared_stack_is_one_parameter_set_whose_gradient_sums_the_four_paths():
    torch.manual_seed(0)
    head = DensePoseAMAHead(4, 8, 3, 2, 4)
    names = [name for name, _ in head.named_parameters() if "body_conv_fcn" in name]
    assert names == ["body.body_conv_fcn1.weight", "body.body_conv_fcn1.bias", "body.body_conv_fcn2.weight",
                     "body.body_conv_fcn2.bias"]
    pooled = [torch.randn(2, 4, s, s) for s in (8, 4, 4, 2)]
    weight = head.body.body_conv_fcn1.weight

    def gradient(paths_used):
        head.zero_grad()
        sum(path.sum() for k, path in enumerate(head.upsampled_paths(pooled)) if k in paths_used).backward()
        return weight.grad.clone()

    per_path = [gradient({k}) for k in range(4)]
    assert all(g.abs().sum() > 0 for g in per_path)
    torch.testing.assert_close(gradient({0, 1, 2, 3}), sum(per_path))
    # All paths end at twice the P2 size, through the shared deconvolutions.
    assert [tuple(p.shape) for p in head.upsampled_paths(pooled)] == [(2, 8, 16, 16)] * 4


def test_channel_attention_matches_a_direct_computation():
    head = DensePoseAMAHead(2, 3, 3, 1, 4)
    x = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]], [[-1.0, 0.0], [0.0, 1.0]], [[0.5, 0.5], [0.5, -2.5]]]])
    w1 = np.array([[0.2, -0.1, 0.4], [0.0, 0.3, -0.2], [-0.5, 0.1, 0.1]])
    b1 = np.array([0.1, -0.2, 0.0])
    w2 = np.array([[1.0, 0.5, -0.5], [-0.3, 0.2, 0.8], [0.0, -1.0, 0.4]])
    b2 = np.array([0.0, 0.1, -0.1])
    with torch.no_grad():
        head.fc1_levels_3.weight.copy_(torch.tensor(w1))
        head.fc1_levels_3.bias.copy_(torch.tensor(b1))
        head.att_levels_3.weight.copy_(torch.tensor(w2))
        head.att_levels_3.bias.copy_(torch.tensor(b2))
    means = np.array([2.5, 0.0, -0.25])  # spatial means of the three channels, by hand
    expected = sigmoid(w2 @ np.maximum(w1 @ means + b1, 0) + b2)
    np.testing.assert_allclose(head.channel_attention(2, x)[0].detach().numpy(), expected, rtol=1e-6)
    # The head returns its paths scaled by their attention.
    torch.manual_seed(0)
    pooled = [torch.randn(1, 2, s, s) for s in (4, 2, 2, 1)]
    _, attended = head(pooled)
    plain = head.upsampled_paths(pooled)
    torch.testing.assert_close(attended[2], plain[2] * head.channel_attention(2, plain[2])[:, :, None, None])


def test_head_paths_and_fusion_match_a_direct_computation():
    """P2 -> deconv_p3; P3, P4 -> p2, p3; P5 -> p1, p2, p3 (densepose.md 12); the static path reads the paths
    before attention, the dynamic one their attended sum; ReLU after each of the three convs."""
    torch.manual_seed(0)
    head = DensePoseAMAHead(2, 4, 3, 1, 4).double()
    with torch.no_grad():
        for param in head.parameters():
            param.copy_(torch.randn_like(param) * 0.5)
    pooled = [torch.randn(1, 2, s, s, dtype=torch.float64) for s in (4, 2, 2, 1)]

    def deconv(x, k):
        layer = getattr(head, f"deconv_p{k}")[0]
        return F.relu(F.conv_transpose2d(x, layer.weight, layer.bias, stride=2, padding=1))

    stack = head.body.body_conv_fcn1
    body = [F.relu(F.conv2d(x, stack.weight, stack.bias, padding=1)) for x in pooled]
    plain = [deconv(body[0], 3), deconv(deconv(body[1], 2), 3), deconv(deconv(body[2], 2), 3),
             deconv(deconv(deconv(body[3], 1), 2), 3)]
    fused, attended = head(pooled)
    for path, got in zip(plain, head.upsampled_paths(pooled)):
        torch.testing.assert_close(got, path)
    static = F.relu(F.conv2d(torch.cat(plain, dim=1), head.ama_static_conv_emb.weight, head.ama_static_conv_emb.bias,
                             padding=1))
    dynamic = F.relu(F.conv2d(sum(attended), head.ama_dynamic_conv_emb.weight, head.ama_dynamic_conv_emb.bias,
                              padding=1))
    expected = F.relu(F.conv2d(torch.cat([static, dynamic], dim=1), head.instance_embedding_layer1.weight,
                               head.instance_embedding_layer1.bias))
    torch.testing.assert_close(fused, expected)


def attention(x_k, x_v, x_q, layers):
    """The release's single-head block, in NumPy: LeakyReLU projections, softmax(q k^T / sqrt d) v, final + v."""
    (wk, bk), (wv, bv), (wq, bq), (wf, bf) = layers
    k, v, q = leaky(x_k @ wk.T + bk), leaky(x_v @ wv.T + bv), leaky(x_q @ wq.T + bq)
    logits = q @ k.T / np.sqrt(k.shape[1])
    a = np.exp(logits - logits.max(axis=1, keepdims=True))
    a /= a.sum(axis=1, keepdims=True)
    return leaky((a @ v) @ wf.T + bf) + x_v


def params(module):
    return [p.detach().double().numpy() for p in module.parameters()]


def test_task_transformer_kernel_matches_a_direct_computation():
    """2-channel head (kernel rows of 18), 3 charts, 2 keypoints, 4-wide box weights; every parameter random."""
    torch.manual_seed(0)
    predictor = TaskTransformerAMAPredictorV2(2, 2, 2, 4).double()
    with torch.no_grad():
        for param in predictor.parameters():
            param.copy_(torch.randn_like(param) * 0.3)
    box = torch.randn(6, 4, dtype=torch.float64)
    kernel = predictor.generate_kernel(box).detach().numpy()
    p = predictor
    flat = lambda conv: conv.weight.detach().double().numpy().reshape(conv.weight.shape[0], -1)  # noqa: E731
    (b1, c1), (b2, c2) = [(w, b) for w, b in zip(params(p.bbox_surface_convertor)[::2],
                                                 params(p.bbox_surface_convertor)[1::2])]
    r_b, r_p, r_k = (m.detach().numpy() for m in (p.bbox_surface_transfer_matrix, p.part_surface_transfer_matrix,
                                                   p.kpt_surface_transfer_matrix))
    box_rows = (leaky((r_b @ box.numpy()) @ b1.T + c1)) @ b2.T + c2
    wp, bp = params(p.part_surface_convertor)
    part_rows = leaky((r_p @ flat(p.ann_index_layer)) @ wp.T + bp)
    wk, bk = params(p.kpt_surface_convertor)
    kpt_rows = leaky((r_k @ flat(p.k_layer)) @ wk.T + bk)
    wa, ba = params(p.param_aggregator)
    pool = leaky(wa[:, :, 0] @ np.concatenate([box_rows, part_rows, kpt_rows]) + ba[:, None])
    query = flat(p.i_layer)
    blocks = [list(zip(params(block)[::2], params(block)[1::2])) for block in (p.parameter_encoder,
                                                                              p.parameter_decoder)]
    encoded = attention(pool, pool, query, blocks[0])
    decoded = attention(encoded, encoded, query, blocks[1])
    wf, bf = params(p.param_predictor)
    np.testing.assert_allclose(kernel, (decoded @ wf.T + bf).reshape(3, 2, 3, 3), rtol=1e-10, atol=1e-12)
    # The final I is the mean of the direct and the generated I; the intermediate dicts carry the generated one.
    fused, paths = torch.randn(1, 2, 4, 4, dtype=torch.float64), [torch.randn(1, 2, 4, 4, dtype=torch.float64)] * 4
    main, inter = predictor(fused, paths, box)
    embedding = F.relu(predictor.dp_emb_layer(fused))
    generated = F.conv2d(embedding, torch.from_numpy(kernel), padding=1)
    torch.testing.assert_close(main["fine_segm"], (predictor.i_layer(embedding) + generated) / 2)
    torch.testing.assert_close(inter[0]["fine_segm"], generated)
    assert inter[1]["fine_segm"] is inter[0]["fine_segm"]


def test_every_relation_matrix_is_initialised_and_the_keypoint_one_reads_its_graph(tmp_path):
    """The release leaves R_k (AMAv2, relation parts) as uninitialised memory; posekit draws N(0, 0.001) or reads
    KPT_SURF_RELATION_DIR's 17 x 25 graph."""
    torch.manual_seed(0)
    predictor = TaskTransformerAMAPredictorV2(4, 24, 17, 8)
    for relation in (predictor.bbox_surface_transfer_matrix, predictor.part_surface_transfer_matrix,
                     predictor.kpt_surface_transfer_matrix):
        relation = relation.detach()
        assert torch.isfinite(relation).all() and 0.0005 < float(relation.std()) < 0.002
        assert float(relation.abs().max()) < 0.01
    graph = np.random.default_rng(0).random((17, 25))
    path = tmp_path / "graphs.npz"
    save_relation_graphs(str(path), {"kpt_surf": graph})
    predictor = TaskTransformerAMAPredictorV2(4, 24, 17, 8, kpt_relation_path=str(path))
    np.testing.assert_allclose(predictor.kpt_surface_transfer_matrix.detach().numpy(), graph.T, rtol=1e-6)


def write_classifier(path, channels=4, keypoints=17, drop=None):
    rng = np.random.default_rng(1)
    arrays = {"kpt_weight": rng.normal(size=(keypoints, channels, 3, 3)), "kpt_bias": rng.normal(size=keypoints),
              "emb_weight": rng.normal(size=(channels, channels, 3, 3)), "emb_bias": rng.normal(size=channels)}
    arrays.pop(drop, None)
    with open(path, "wb") as handle:
        pickle.dump(arrays, handle)
    return arrays


def test_relation_parts_predictor_uses_its_classifier_file_and_names_a_missing_one(tmp_path):
    path = tmp_path / "kpt_classifier.pkl"
    arrays = write_classifier(path)
    predictor = RelationPartsAMAPredictor(4, 24, load_kpt_classifier(str(path), 4, 17)).double()
    stored = {name: torch.from_numpy(value.astype(np.float32)).double() for name, value in arrays.items()}
    torch.testing.assert_close(predictor.dp_emb_layer.weight.detach(), stored["emb_weight"])
    fused = torch.randn(2, 4, 6, 6, dtype=torch.float64)
    main, inter = predictor(fused, [fused] * 4)
    embedding = F.relu(F.conv2d(fused, stored["emb_weight"], stored["emb_bias"], padding=1))
    expected_k = F.conv2d(embedding, stored["kpt_weight"], stored["kpt_bias"], padding=1)
    torch.testing.assert_close(main["keypoints"], expected_k)
    assert main["fine_segm"].shape == (2, 25, 6, 6) and len(inter) == 2
    missing = tmp_path / "nowhere" / "kpt_classifier.pkl"
    with pytest.raises(CheckpointError, match=f"KPT_CLASSIFIER_WEIGHT_DIR: {missing}: keypoint classifier file not found"):
        load_kpt_classifier(str(missing), 4, 17)
    with pytest.raises(ConfigError, match="KPT_CLASSIFIER_WEIGHT_DIR is empty"):
        load_kpt_classifier("", 4, 17)
    with pytest.raises(CheckpointError, match=r"expected 'kpt_weight' of shape \(17, 8, 3, 3\), got \(17, 4, 3, 3\)"):
        load_kpt_classifier(str(path), 8, 17)
    write_classifier(path, drop="emb_bias")
    with pytest.raises(CheckpointError, match="expected arrays 'kpt_weight', 'kpt_bias', 'emb_weight', 'emb_bias'"):
        load_kpt_classifier(str(path), 4, 17)


def test_ama_v1_predictor_outputs_and_gaussian_init():
    torch.manual_seed(0)
    predictor = AMAPredictor(8, 24, num_keypoints=17, kpt_up_scale=2)
    assert 0.0005 < float(predictor.index_uv_layer.weight.detach().std()) < 0.0015  # N(0, 0.001)
    assert not predictor.u_layer.bias.detach().any()
    main, inter = predictor(torch.randn(1, 8, 6, 6), [torch.randn(1, 8, 6, 6)] * 4)
    assert {key: tuple(value.shape[1:]) for key, value in main.items()} == {
        "coarse_segm": (15, 6, 6), "fine_segm": (25, 6, 6), "u": (25, 6, 6), "v": (25, 6, 6),
        "body_mask": (2, 6, 6), "keypoints": (17, 12, 12)}
    assert [sorted(d) for d in inter] == [sorted(["coarse_segm", "fine_segm", "u", "v", "body_mask"])] * 2


def test_ia_loss_by_hand_and_without_foreground():
    """ROI 0: foreground at two pixels; ROI 1: no foreground (left out). Vectors: ROI 0's fg and bg means."""
    m = torch.zeros(2, 2, 2, 2)
    m[0, 0] = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    m[0, 1] = torch.tensor([[0.0, 2.0], [4.0, 0.0]])
    labels = torch.tensor([[[1, 0], [1, 0]], [[0, 0], [0, 0]]])
    fg, bg = np.array([2.0, 2.0]), np.array([3.0, 1.0])  # means over (0,0),(1,0) and over (0,1),(1,1)
    ce = lambda v, t: np.log(np.exp(v).sum()) - v[t]  # noqa: E731
    losses = ia_losses(m, labels)
    np.testing.assert_allclose(float(losses["loss_push"]), 0.5 * (ce(fg, 1) + ce(bg, 0)) / 2, rtol=1e-6)
    assert float(losses["loss_pull"]) == 0
    m.requires_grad_(True)
    empty = ia_losses(m, torch.zeros_like(labels))  # the release returned a bare 0 and crashed here
    assert float(empty["loss_push"]) == 0 and empty["loss_push"].device == m.device
    empty["loss_push"].backward()
    assert m.grad is not None
