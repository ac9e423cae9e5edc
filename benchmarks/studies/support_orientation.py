"""Does a support scan turned against its queries explain a failing fold? (eval only, no training)

Prints, for every fold of a store, the in-plane angle from the first class's centroid to the
second's (ACDC: LV-BP -> RV) in the support and the queries, then scores one trained run on its
fold with the support's slices turned by 0, 90 and 270 degrees (the model and queries unchanged):

    python benchmarks/studies/support_orientation.py RUN --store acdc.h5 --fold 3 --classes 3 1
"""

from __future__ import annotations

import argparse

import numpy as np


def centroid_angle(label: np.ndarray, a: int, b: int) -> float:
    """Degrees of the vector from class ``a``'s centroid to class ``b``'s in (Z, H, W) ``label``
    (0 = towards +W, 90 = towards -H: image up)."""
    ca = np.argwhere(label == a)[:, 1:].mean(axis=0)
    cb = np.argwhere(label == b)[:, 1:].mean(axis=0)
    dy, dx = cb - ca
    return float(np.degrees(np.arctan2(-dy, dx)))


def main() -> None:
    from fewshotkit.data.episodes.folds import store_folds
    from fewshotkit.evaluation.evaluate import evaluate_predictor
    from fewshotkit.evaluation.inference import MethodPredictor
    from fewshotkit.core.seeding import seed_everything
    from fewshotkit.data.store.reader import SliceStore
    from fewshotkit.method.checkpoint import load_method

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="a trained run directory or checkpoint")
    parser.add_argument("--store", required=True)
    parser.add_argument("--fold", type=int, required=True)
    parser.add_argument("--classes", type=int, nargs=2, default=(3, 1), metavar=("FROM", "TO"),
                        help="label values whose centroids give the angle (default: 3 1, ACDC LV-BP -> RV)")
    args = parser.parse_args()

    store = SliceStore(args.store)
    for fold in store_folds(store):
        angles = [centroid_angle(store.label(v), *args.classes) for v in fold.queries]
        print(f"fold {fold.index}: support {fold.support} {centroid_angle(store.label(fold.support), *args.classes):.0f} deg;"
              f" queries {' '.join(f'{a:.0f}' for a in angles)}")
    loaded = load_method(args.run, "cpu")
    inner = MethodPredictor(loaded.method, loaded.spec.image_size, "cpu")
    for turns in (0, 1, 3):
        def predictor(images, masks, queries, k=turns):
            return inner(np.rot90(images, k, axes=(1, 2)).copy(), np.rot90(masks, k, axes=(1, 2)).copy(), queries)

        seed_everything(0)
        per = evaluate_predictor(store, predictor, [args.fold], protocol="roy").folds[0].per_class()
        scores = ", ".join(f"{name} {dice:.2f}" for name, dice in per.items())
        print(f"fold {args.fold}, support turned {90 * turns} deg counter-clockwise: {scores}; mean {np.mean(list(per.values())):.2f}")


if __name__ == "__main__":
    main()
