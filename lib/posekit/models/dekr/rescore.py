"""DEKR's rescore net (official ``PredictOKSNet``): predicts a pose's OKS from its geometry and joint scores."""
import torch
from torch import nn


class RescoreNet(nn.Module):
    """MLP ``in_features -> hidden -> hidden -> 1`` with ReLUs; keys ``l1``, ``l2``, ``l3`` as official."""

    def __init__(self, in_features: int, hidden: int) -> None:
        super().__init__()
        self.l1 = nn.Linear(in_features, hidden)
        self.l2 = nn.Linear(hidden, hidden)
        self.l3 = nn.Linear(hidden, 1)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Predicted OKS, shape (N, 1), for features of shape (N, in_features)."""
        return self.l3(self.relu(self.l2(self.relu(self.l1(features)))))
