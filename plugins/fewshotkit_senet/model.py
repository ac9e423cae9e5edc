"""An SE-Net-style few-shot segmenter after Roy et al. 2020 ("Squeeze & excite guided few-shot
segmentation of volumetric images", MedIA 59).

Two U-shaped arms: a light conditioner sees the support image and a class mask; a segmenter sees
the query. At every encoder level, the bottleneck and every decoder level, the conditioner's
features are squeezed along channels (1x1 conv -> sigmoid) into a spatial excitation map that
multiplies the segmenter's features ("channel squeeze & spatial excitation", the interaction
Roy et al. found best). Monolithic: no backbone/pooler/classifier parts.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fewshotkit import FewshotkitError
from fewshotkit.interfaces.method import Episode, Method, MethodOutput
from fewshotkit.method.losses import soft_dice_loss, weighted_cross_entropy


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False),
        nn.GroupNorm(min(8, cout // 2), cout),
        nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False),
        nn.GroupNorm(min(8, cout // 2), cout),
        nn.ReLU(inplace=True),
    )


class _UArm(nn.Module):
    """Encoder (``depth`` levels, max-pool) -> bottleneck -> decoder (upsample + skip)."""

    def __init__(self, cin: int, width: int, depth: int) -> None:
        super().__init__()
        self.enc = nn.ModuleList([_block(cin if i == 0 else width, width) for i in range(depth)])
        self.mid = _block(width, width)
        self.dec = nn.ModuleList([_block(2 * width, width) for _ in range(depth)])

    def levels(self) -> int:
        return 2 * len(self.enc) + 1

    def forward(self, x: torch.Tensor, gates: list[torch.Tensor] | None = None) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """x (B, cin, H, W) -> (last features (B, width, H, W), features of every level).

        ``gates``: one spatial map (B or 1, 1, h_l, w_l) per level multiplying that level's output.
        """
        feats: list[torch.Tensor] = []

        def gate(t: torch.Tensor) -> torch.Tensor:
            if gates is not None:
                t = t * gates[len(feats)]
            feats.append(t)
            return t

        skips = []
        for enc in self.enc:
            x = gate(enc(x))
            skips.append(x)
            x = F.max_pool2d(x, 2, ceil_mode=True)
        x = gate(self.mid(x))
        for dec, skip in zip(self.dec, reversed(skips)):
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = gate(dec(torch.cat([x, skip], dim=1)))
        return x, feats


class SENet(Method):
    """SE-Net-style few-shot segmentation; see the module docstring.

    Per foreground class c, the conditioner reads (support image, mask of c); its excitation maps
    are averaged over the S support slices; the segmenter then scores background vs. c on every
    query. The N binary results are merged: class c's logit is its foreground logit, the
    background logit is the mean of the N background logits.
    Losses in training: ``ce`` (class-weighted cross-entropy) and ``dice`` (soft Dice, foreground).
    """

    def __init__(
        self,
        cond_width: int = 16,
        seg_width: int = 32,
        depth: int = 3,
        bg_weight: float = 1.0,
        dice_weight: float = 1.0,
    ) -> None:
        super().__init__()
        for name, value, low in (("cond_width", cond_width, 2), ("seg_width", seg_width, 2), ("depth", depth, 1)):
            if not isinstance(value, int) or value < low:
                raise FewshotkitError(f"option 'options.{name}' must be an integer >= {low}, got {value!r}")
        if bg_weight < 0 or dice_weight < 0:
            raise FewshotkitError("options 'options.bg_weight' and 'options.dice_weight' must be >= 0")
        self.conditioner = _UArm(2, cond_width, depth)
        self.squeeze = nn.ModuleList([nn.Conv2d(cond_width, 1, 1) for _ in range(self.conditioner.levels())])
        self.segmenter = _UArm(1, seg_width, depth)
        self.head = nn.Conv2d(seg_width, 2, 1)
        self.bg_weight = float(bg_weight)
        self.dice_weight = float(dice_weight)

    def _binary_logits(self, sup: torch.Tensor, mask: torch.Tensor, qry: torch.Tensor) -> torch.Tensor:
        """sup (S, 1, H, W), mask (S, 1, H, W), qry (Q, 1, H, W) -> (Q, 2, H, W) bg/fg logits."""
        _, cond_feats = self.conditioner(torch.cat([sup, mask], dim=1))
        gates = [torch.sigmoid(sq(f)).mean(dim=0, keepdim=True) for sq, f in zip(self.squeeze, cond_feats)]
        out, _ = self.segmenter(qry, gates)
        return self.head(out)

    def forward(self, episode: Episode) -> MethodOutput:
        """Episode -> logits (B, Q, N + 1, H, W); ``ce`` and ``dice`` losses in training."""
        sup, masks, qry = episode.support_images, episode.support_masks, episode.query_images
        B, N = sup.shape[0], masks.shape[2] - 1
        logits = []
        for b in range(B):
            binary = [self._binary_logits(sup[b], masks[b][:, c : c + 1].to(sup.dtype), qry[b]) for c in range(1, N + 1)]
            bg = torch.stack([t[:, 0] for t in binary]).mean(dim=0, keepdim=False).unsqueeze(1)
            logits.append(torch.cat([bg, *(t[:, 1:2] for t in binary)], dim=1))
        out = torch.stack(logits)
        losses: dict[str, torch.Tensor] = {}
        if self.training and episode.query_labels is not None:
            flat, labels = out.flatten(0, 1), episode.query_labels.flatten(0, 1).long()
            losses["ce"] = weighted_cross_entropy(flat, labels, self.bg_weight)
            if self.dice_weight > 0:
                losses["dice"] = self.dice_weight * soft_dice_loss(flat, labels)
        return MethodOutput(out, losses)
