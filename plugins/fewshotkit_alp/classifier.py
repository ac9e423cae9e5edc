"""The ALPNet classifier: scaled cosine similarity with softmax-weighted prototype fusion (Eq. 4-6)."""

from __future__ import annotations

import torch

from fewshotkit.method.composed import ScaledCosineClassifier, cosine_scores


class CosineSoftmaxClassifier(ScaledCosineClassifier):
    """Per class c with prototypes p_1..p_K: S_k = scale * cos(f, p_k) (Eq. 4),
    score_c = sum_k softmax_k(S_k) * S_k (Eq. 5); the softmax over classes (Eq. 6) is left to the
    caller: the scores are the logits."""

    def forward(self, features: torch.Tensor, prototypes: list[torch.Tensor]) -> torch.Tensor:
        """features (Q, C, h, w), N + 1 prototype tensors (P_c, C) -> logits (Q, N + 1, h, w)."""
        scores = []
        for protos in prototypes:
            s = cosine_scores(features, protos, self.scale)  # (Q, P_c, h, w)
            scores.append((s.softmax(dim=1) * s).sum(dim=1))
        return torch.stack(scores, dim=1)
