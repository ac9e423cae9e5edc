"""Label codes: the integers a user's label maps hold (0..65535), checked, and mapped to compact indices.

A label map may use any codes (a cardiac dataset's 200/500/600, a parcellation's thousands); the
model and the store work on compact indices 1..K (a store's labels are uint8), and outputs carry the
user's codes again in the smallest unsigned type that holds them.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from fewshotkit.core.errors import DataError

MAX_CODE = 65535
MAX_CLASSES = 255  # compact indices 1..255 fit a store's uint8 labels


def smallest_unsigned(largest: int) -> type[np.unsignedinteger]:
    """``np.uint8`` for codes up to 255, else ``np.uint16`` (codes are at most 65535)."""
    if largest > MAX_CODE:
        raise DataError(f"label code {largest} is above {MAX_CODE}; label codes are integers 0..{MAX_CODE}")
    return np.uint8 if largest <= 255 else np.uint16


def as_codes(label: np.ndarray, where: Any) -> np.ndarray:
    """``label`` (any numeric dtype, any shape) as label codes in the smallest unsigned type, or a
    one-line DataError naming ``where`` (a file or an argument) for negative, fractional or too large values."""
    if label.dtype == bool:
        return label.astype(np.uint8)
    values = np.unique(label)
    if np.issubdtype(values.dtype, np.floating):
        if not np.isfinite(values).all():
            raise DataError(f"'{where}' contains NaN or infinite voxels; fix or drop this label")
        fractional = values[values != np.round(values)]
        if fractional.size:
            raise DataError(f"'{where}' has non-integer label values (e.g. {float(fractional[0]):g}); "
                            f"a label map holds integer codes 0..{MAX_CODE}")
    if values.size and values[0] < 0:
        raise DataError(f"'{where}' has negative label value {float(values[0]):g}; "
                        f"label codes are integers 0..{MAX_CODE}")
    if values.size and values[-1] > MAX_CODE:
        raise DataError(f"'{where}' has label value {float(values[-1]):g}, above {MAX_CODE}; "
                        f"label codes are integers 0..{MAX_CODE}")
    return label.astype(smallest_unsigned(int(values[-1]) if values.size else 0))


def check_code(value: Any, option: str) -> int:
    """One label code given as text or a number (``--labels``, the API's ``classes``): an integer 1..65535."""
    text = str(value).strip()
    try:
        number = float(text)
    except ValueError:
        raise DataError(f"{option}: '{text}' is not a label code (an integer 1..{MAX_CODE})") from None
    if not number.is_integer():
        raise DataError(f"{option}: label code {text} is fractional; label codes are integers 1..{MAX_CODE}")
    if number < 0:
        raise DataError(f"{option}: label code {text} is negative; label codes are integers 1..{MAX_CODE}")
    if number > MAX_CODE:
        raise DataError(f"{option}: label code {text} is above {MAX_CODE}; label codes are integers 1..{MAX_CODE}")
    if number == 0:
        raise DataError(f"{option}: label code 0 is the background; give class codes 1..{MAX_CODE}")
    return int(number)


def compact_indices(codes: Sequence[int]) -> dict[int, int]:
    """Compact index (1..K, in code order) -> code, for the class ``codes`` (background 0 excluded)."""
    ordered = sorted({int(c) for c in codes if int(c) != 0})
    if len(ordered) > MAX_CLASSES:
        raise DataError(f"{len(ordered)} classes; at most {MAX_CLASSES} classes fit one store")
    return {index: code for index, code in enumerate(ordered, start=1)}

