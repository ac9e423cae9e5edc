"""RPT's bias-alleviated transformer (BaT) block (Zhu et al. 2023): regional prototypes attend to a
coarse query prototype, then to each other."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

SUPPRESSED = -10000.0  # what RPT adds to the affinity of regions below the cut


def search_and_weight(regions: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
    """RPT's search-and-weight step, before its LayerNorm: P_i + a_i q.

    A = P q (a raw dot product per region); regions with A below floor((min A + mean A) / 2) get
    -10000 added to their affinity; a = softmax of A over the regions.

    Args:
        regions: (Q, R, C) regional prototypes; query: (Q, C) coarse query prototypes.

    Returns:
        (Q, R, C).
    """
    affinity = torch.einsum("qrc,qc->qr", regions, query)
    cut = torch.floor((affinity.amin(dim=1, keepdim=True) + affinity.mean(dim=1, keepdim=True)) / 2)
    weights = torch.where(affinity < cut, affinity + SUPPRESSED, affinity).softmax(dim=1)
    return regions + weights.unsqueeze(2) * query.unsqueeze(1)


class BiasAlleviatedBlock(nn.Module):
    """One BaT pass (RPT's ``BATE``): search-and-weight + LayerNorm, multi-head self-attention among
    the regions (``heads`` heads of width C each, ReLU on queries, keys, values and output, scaled
    by sqrt(C), dropout 0.1, residual + LayerNorm), then an MLP C -> 2C (GELU) -> C with residual +
    LayerNorm. RPT applies one block 3 times with shared weights."""

    def __init__(self, channels: int, heads: int = 3, dropout: float = 0.1) -> None:
        super().__init__()
        self.heads = heads
        self.norm_sw = nn.LayerNorm(channels)
        self.w_q = nn.Linear(channels, heads * channels)
        self.w_k = nn.Linear(channels, heads * channels)
        self.w_v = nn.Linear(channels, heads * channels)
        for layer in (self.w_q, self.w_k, self.w_v):
            nn.init.normal_(layer.weight, mean=0.0, std=math.sqrt(2.0 / (2 * channels)))
        self.out = nn.Linear(heads * channels, channels)
        nn.init.xavier_normal_(self.out.weight)
        self.drop_attention = nn.Dropout(dropout)
        self.drop_out = nn.Dropout(dropout)
        self.norm_attention = nn.LayerNorm(channels)
        self.mlp = nn.Sequential(nn.Linear(channels, 2 * channels), nn.GELU(), nn.Linear(2 * channels, channels))
        self.norm_mlp = nn.LayerNorm(channels)

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        """Self-attention among the regions: (Q, R, C) -> (Q, R, C)."""
        Q, R, C = x.shape
        split = [F.relu(w(x)).view(Q, R, self.heads, C).transpose(1, 2) for w in (self.w_q, self.w_k, self.w_v)]
        q, k, v = split  # (Q, heads, R, C)
        attn = self.drop_attention((q @ k.transpose(-1, -2) / math.sqrt(C)).softmax(dim=-1))
        mixed = (attn @ v).transpose(1, 2).reshape(Q, R, self.heads * C)
        return self.norm_attention(F.relu(self.drop_out(self.out(mixed))) + x)

    def forward(self, regions: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
        """regions (Q, R, C), coarse query prototypes (Q, C) -> refined regions (Q, R, C)."""
        x = self.attention(self.norm_sw(search_and_weight(regions, query)))
        return self.norm_mlp(self.mlp(x) + x)
