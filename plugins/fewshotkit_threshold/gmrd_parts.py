"""GMRD's parts (Cheng et al., IEEE TMI 2024): learned representative descriptors, the decoder that
reads a query's similarity to them, and the descriptor loss of the paper-era code."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fewshotkit.interfaces.optimization import ParameterGroup, Trainable

from fewshotkit_threshold.rpt_losses import dilate

EDGE_ITERATIONS = 2  # GMRD's 3 x 3 erosion / dilation, twice


def erode(masks: torch.Tensor, iterations: int = EDGE_ITERATIONS) -> torch.Tensor:
    """Binary erosion with a 3 x 3 square (pixels beyond the border count as set): (..., H, W)."""
    return 1 - dilate(1 - masks, iterations)


def fill_outside(features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """A (C, G, G) map with every pixel outside ``mask`` (G, G) replaced by a pixel inside it.

    GMRD fills them with inside pixels drawn at random; here the j-th outside pixel (raster order)
    takes the (j mod n)-th of the n inside pixels, so a prediction does not depend on a draw.

    Returns:
        (C, G * G); zeros when the mask is empty.
    """
    flat = features.flatten(1)
    inside = mask.flatten() > 0.5
    n = int(inside.sum())
    if n == 0:
        return torch.zeros_like(flat)
    sources = torch.nonzero(inside).squeeze(1)
    outside = torch.nonzero(~inside).squeeze(1)
    filled = flat.clone()
    filled[:, outside] = flat[:, sources[torch.arange(outside.numel(), device=flat.device) % n]]
    return filled


class DescriptorMLP(nn.Module, Trainable):
    """Maps the G * G positions of each feature channel to ``count`` descriptors: Linear(G^2, count),
    Dropout 0.2, ReLU, Linear(count, count) (GMRD's MLP as in its paper-era code).

    The first layer trains in the parameter group ``descriptors``, by default at the rate of every
    other weight (GMRD trains all at one rate with SGD). Adam moves each weight by about the learning
    rate whatever the size of its gradient, and this layer sums G^2 of them into each descriptor: on
    a synthetic episode at the CPU recipe's grid (128), one AdamW step at lr 1e-3 from
    initialisation changes the foreground descriptors by about 19 times their size, and by about
    their own size at 0.05 x lr (tests/test_parameter_groups.py bounds these: > 5 and < a fifth of it).
    ``training.groups.descriptors.lr_scale`` slows this layer alone.
    """

    def __init__(self, grid: int, count: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(grid * grid, count), nn.Dropout(0.2), nn.ReLU(),
                                    nn.Linear(count, count))

    def parameter_groups(self) -> dict[str, ParameterGroup]:
        """The weights over the grid's positions: group ``descriptors``."""
        return {"descriptors": ParameterGroup([p for p in self.layers[0].parameters() if p.requires_grad])}

    def forward(self, filled: torch.Tensor) -> torch.Tensor:
        """(C, G * G) -> descriptors (count, C)."""
        return self.layers(filled).T


class MatchingDecoder(nn.Module):
    """GMRD's decoder of one similarity stack (n + 2 maps: n learned, the global and the edge
    descriptor) into one logit map: 1x1 conv to n + ReLU; a residual pair of 3x3 convs with ReLU;
    3x3 conv to 100, ReLU, Dropout2d 0.1, 1x1 conv to 1 (no biases)."""

    def __init__(self, count: int, width: int = 100) -> None:
        super().__init__()
        self.reduce = nn.Sequential(nn.Conv2d(count + 2, count, 1, bias=False), nn.ReLU())
        self.residual = nn.Sequential(nn.Conv2d(count, count, 3, padding=1, bias=False), nn.ReLU(),
                                      nn.Conv2d(count, count, 3, padding=1, bias=False), nn.ReLU())
        self.out = nn.Sequential(nn.Conv2d(count, width, 3, padding=1, bias=False), nn.ReLU(), nn.Dropout2d(0.1),
                                 nn.Conv2d(width, 1, 1, bias=False))

    def forward(self, similarity: torch.Tensor) -> torch.Tensor:
        """(Q, n + 2, h, w) -> (Q, 1, h, w)."""
        x = self.reduce(similarity)
        return self.out(self.residual(x) + x)


def similarity(features: torch.Tensor, descriptors: torch.Tensor) -> torch.Tensor:
    """Cosine similarity (no scale) of every query feature with every descriptor: (Q, C, h, w),
    (P, C) -> (Q, P, h, w)."""
    f = F.normalize(features, dim=1)
    d = F.normalize(descriptors, dim=1)
    return torch.einsum("qchw,pc->qphw", f, d)


def descriptor_loss(support_fg: torch.Tensor, query_fg: torch.Tensor, support_bg: torch.Tensor,
                    query_bg: torch.Tensor) -> torch.Tensor:
    """GMRD's paper-era descriptor loss: intra + inter.

    intra = 2 - m_fg - m_bg, where m is the mean over the support's descriptors of their match in
    the query's: for each learned descriptor its best cosine among the query's learned ones, for
    the global and the edge descriptor the cosine with the query's own. inter = max(0, mean cos(
    support fg, support bg)) + max(0, mean cos(query fg, query bg)) over all descriptor pairs.

    Args:
        (n_fg + 2, C), (n_fg + 2, C), (n_bg + 2, C), (n_bg + 2, C): the last two rows of each are the
        global and the edge descriptor.
    """
    def match(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        a, b = F.normalize(a, dim=1), F.normalize(b, dim=1)
        learned = (a[:-2] @ b[:-2].T).amax(dim=1)
        return torch.cat([learned, (a[-2:] * b[-2:]).sum(dim=1)]).mean()

    def overlap(fg: torch.Tensor, bg: torch.Tensor) -> torch.Tensor:
        return (F.normalize(fg, dim=1) @ F.normalize(bg, dim=1).T).mean().clamp_min(0)

    intra = 2 - match(support_fg, query_fg) - match(support_bg, query_bg)
    return intra + overlap(support_fg, support_bg) + overlap(query_fg, query_bg)
