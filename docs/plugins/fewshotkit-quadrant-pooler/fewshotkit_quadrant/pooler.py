import torch
import torch.nn.functional as F

from fewshotkit.interfaces.pooler import PrototypePooler


class QuadrantPooler(PrototypePooler):
    """One masked-average prototype per class in each 2 x 2 quadrant of the feature map."""

    def __init__(self, min_weight: float = 1.0):
        super().__init__()
        self.min_weight = min_weight  # quadrants with less mask mass than this are skipped

    def forward(self, features, masks):
        # features (S, C, h, w); masks (S, N + 1, H, W) -> N + 1 tensors (P_c, C)
        masks = F.interpolate(masks, size=features.shape[-2:], mode="bilinear", align_corners=False)
        h, w = features.shape[-2:]
        prototypes = []
        for c in range(masks.shape[1]):
            m = masks[:, c : c + 1]
            protos = [(features * m).sum((0, 2, 3)) / (m.sum() + 1e-5)]  # global fallback
            for ys in (slice(0, h // 2), slice(h // 2, h)):
                for xs in (slice(0, w // 2), slice(w // 2, w)):
                    mq, fq = m[..., ys, xs], features[..., ys, xs]
                    if mq.sum() >= self.min_weight:
                        protos.append((fq * mq).sum((0, 2, 3)) / mq.sum())
            prototypes.append(torch.stack(protos))
        return prototypes
