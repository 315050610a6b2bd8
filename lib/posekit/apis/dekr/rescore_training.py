"""Training of DEKR's rescore net (dekr.md 7.6): an MLP regressing each predicted pose's OKS."""
import logging
from typing import List, Tuple

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from ...data.metadata import KeypointSet
from ...inference.dekr.rescore import rescore_features
from ...utils.errors import DataError

logger = logging.getLogger(__name__)


def init_rescore_weights(net: nn.Module) -> None:
    """Official initialisation: kaiming-uniform (a = 1) weights and zero biases in every Linear layer."""
    for module in net.modules():
        if isinstance(module, nn.Linear):
            nn.init.kaiming_uniform_(module.weight, a=1)
            nn.init.zeros_(module.bias)


def rescore_training_set(keypoints: np.ndarray, oks: np.ndarray,
                         keypoint_set: KeypointSet) -> Tuple[torch.Tensor, torch.Tensor]:
    """Float32 features (M, F) and targets (M, 1) from predicted poses (M, K, 3) and their best OKS (M,).

    An OKS of exactly 1 only arises against unlabelled ground truths, so, as officially, it becomes 0.
    """
    if keypoints.ndim != 3 or keypoints.shape[1:] != (keypoint_set.num_joints, 3) or len(oks) != len(keypoints):
        raise DataError(f"rescore data: expected poses of shape (M, {keypoint_set.num_joints}, 3) and M OKS values "
                        f"for keypoint set '{keypoint_set.name}', got {keypoints.shape} and {oks.shape}")
    # Features in float64 then float32, as the official NumPy code computes them.
    features = rescore_features(torch.from_numpy(keypoints.astype(np.float64)), keypoint_set).float()
    targets = torch.from_numpy(np.where(oks == 1, 0.0, oks)).float()[:, None]
    return features, targets


def train_rescore_net(net: nn.Module, features: torch.Tensor, targets: torch.Tensor, epochs: int,
                      batch_size: int, lr: float) -> List[float]:
    """Adam + MSE over batches drawn from a NumPy permutation per epoch (last partial batch dropped).

    Runs on the device of ``net``; returns each epoch's mean batch loss.
    """
    batches = len(features) // batch_size
    if batches == 0:
        raise DataError(f"rescore data: {len(features)} poses, fewer than one batch of RESCORE.BATCHSIZE "
                        f"({batch_size}); collect more data or lower RESCORE.BATCHSIZE")
    device = next(net.parameters()).device
    features, targets = features.to(device), targets.to(device)
    optimizer = torch.optim.Adam(net.parameters(), lr=lr)
    mse = nn.MSELoss()
    net.train()
    epoch_losses = []
    for epoch in tqdm(range(epochs), desc="rescore net"):
        order = torch.from_numpy(np.random.permutation(len(features))).to(device)
        total = 0.0
        for batch in range(batches):
            chosen = order[batch * batch_size:(batch + 1) * batch_size]
            optimizer.zero_grad()
            loss = mse(net(features[chosen]), targets[chosen])
            loss.backward()
            optimizer.step()
            total += loss.item()
        epoch_losses.append(total / batches)
        logger.info("rescore epoch %d: train loss %.6f", epoch + 1, epoch_losses[-1])
    return epoch_losses
