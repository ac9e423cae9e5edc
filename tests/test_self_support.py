"""Self-support at inference (``options.self_support``): each query scored again with prototypes of
its own confident regions added to the support's."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from fewshotkit.method.composed import cosine_scores, masked_average, self_support_scores
from fewshotkit.core.errors import FewshotkitError
from fewshotkit.interfaces.classifier import Classifier
from fewshotkit.interfaces.method import Episode
from fewshotkit.interfaces.pooler import PrototypePooler
from fewshotkit.method.overrides import apply_inference_overrides
from fewshotkit.method.spec import MethodSpec
from fewshotkit.method.build import build_method

LIGHT = {"type": "light", "width": 8, "out_channels": 16}


class GlobalPooler(PrototypePooler):
    """One masked-average prototype per class."""

    def forward(self, features, masks):
        return list(masked_average(features, masks).unsqueeze(1))


class MaxCosine(Classifier):
    """Per class, the best cosine (x 20) over its prototypes."""

    def forward(self, features, prototypes):
        return torch.stack([cosine_scores(features, p, 20.0).amax(dim=1) for p in prototypes], dim=1)


def _features(vectors: dict[str, list[float]], layout: list[str]) -> torch.Tensor:
    """(1, 2, 1, W): one row of feature vectors named by ``layout``."""
    return torch.tensor([vectors[name] for name in layout]).T.reshape(1, 2, 1, len(layout))


def test_an_ambiguous_pixel_joins_the_confident_part_of_its_own_slice_it_resembles():
    # the query's organ is darker than the support's: its core still matches the support's organ
    # (confident), its rim falls nearer the support's background, yet it is close to the core
    support = _features({"fg": [1.0, 0.0], "bg": [0.0, 1.0]}, ["fg", "fg", "bg", "bg"])
    masks = torch.tensor([[1.0, 1.0, 0.0, 0.0]]).reshape(1, 1, 1, 4)
    prototypes = GlobalPooler()(support, torch.cat([1 - masks, masks], dim=1))
    query = _features({"core": [1.0, 0.2], "rim": [0.9, 1.0], "bg": [0.0, 1.0]}, ["core", "rim", "bg", "bg"])
    first = MaxCosine()(query, prototypes)
    assert first.argmax(dim=1).flatten().tolist() == [1, 0, 0, 0]
    assert first.softmax(dim=1)[0, 0, 0, 1] < 0.9  # the rim: background, but not confidently
    second = self_support_scores(query, prototypes, first, GlobalPooler(), MaxCosine(), 0.9)
    assert second.shape == first.shape
    assert second.argmax(dim=1).flatten().tolist() == [1, 1, 0, 0]


def _episode(queries: int = 2) -> Episode:
    g = torch.Generator().manual_seed(0)
    support = torch.rand(1, 1, 1, 32, 32, generator=g)
    fg = torch.zeros(1, 1, 1, 32, 32)
    fg[..., 8:20, 10:24] = 1.0
    query = (support.repeat(1, queries, 1, 1, 1) + 0.3 * torch.rand(1, queries, 1, 32, 32, generator=g)).clamp(0, 1)
    return Episode(support, torch.cat([1 - fg, fg], dim=2), query)


def _method(**options):
    spec = MethodSpec.from_dict({"method": "alpnet", "backbone": LIGHT, "pooler": {"type": "alp"},
                                 "classifier": {"type": "cosine-softmax"}, "options": options})
    torch.manual_seed(0)
    return build_method(spec)


def test_the_method_option_acts_at_inference_only_and_one_slice_at_a_time():
    plain, refined = _method(), _method(self_support=0.6)
    refined.load_state_dict(plain.state_dict())
    episode = _episode()
    with torch.no_grad():
        plain.train(), refined.train()
        torch.testing.assert_close(refined(episode).logits, plain(episode).logits)  # training: untouched
        plain.eval(), refined.eval()
        off, on = plain(episode).logits, refined(episode).logits
        assert on.shape == off.shape and not torch.allclose(on, off)
        alone = refined(Episode(episode.support_images, episode.support_masks, episode.query_images[:, 1:])).logits
    torch.testing.assert_close(alone[:, 0], on[:, 1], atol=1e-5, rtol=1e-5)  # batching does not matter
    assert F.softmax(on, dim=2).isfinite().all()


def test_a_trained_model_takes_it_as_an_inference_option_and_bad_levels_are_refused():
    spec = MethodSpec.from_dict({"method": "alpnet", "backbone": LIGHT, "pooler": {"type": "alp"},
                                 "classifier": {"type": "cosine-softmax"}})
    assert "self_support" not in spec.to_dict()["options"]  # specs without it keep their cache keys
    assert build_method(apply_inference_overrides(spec, ["options.self_support=0.7"])).self_support == 0.7
    for bad in (0.3, 1.0, True):
        with pytest.raises(FewshotkitError, match="options.self_support"):
            _method(self_support=bad)
