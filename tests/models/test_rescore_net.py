"""The rescore MLP (official PredictOKSNet): sizes, keys and output shape (dekr.md 5 and 7.6)."""
import pytest
import torch

from posekit.models.dekr import build_rescore_net


@pytest.mark.parametrize("relative, features, params", [
    ("coco/w32/w32_4x_reg03_bs10_512_adam_lr1e-3_coco_x140.yaml", 74, 85_249),
    ("crowdpose/w32/w32_4x_reg03_bs10_512_adam_lr1e-3_crowdpose_x300.yaml", 59, 81_409),
])
def test_rescore_net_matches_official(experiment_cfg, relative, features, params):
    net = build_rescore_net(experiment_cfg(relative))
    assert sum(p.numel() for p in net.parameters()) == params
    assert list(net.state_dict()) == ["l1.weight", "l1.bias", "l2.weight", "l2.bias", "l3.weight", "l3.bias"]
    assert net(torch.randn(5, features)).shape == (5, 1)


def test_rescore_net_computes_the_mlp(experiment_cfg):
    net = build_rescore_net(experiment_cfg("coco/rescore_coco.yaml", "RESCORE.HIDDEN_LAYER", "8")).double()
    x = torch.randn(3, 74, dtype=torch.float64)
    hidden = (x @ net.l1.weight.T + net.l1.bias).clamp(min=0)
    hidden = (hidden @ net.l2.weight.T + net.l2.bias).clamp(min=0)
    torch.testing.assert_close(net(x), hidden @ net.l3.weight.T + net.l3.bias)
