"""Schema of a fewshotkit slice store (HDF5). docs/store-format.md describes it in prose.

Layout::

    /                          attrs: schema_version, format, preset, modality, classes (JSON),
                                      label_codes (JSON, version 2), preprocessing (JSON),
                                      normalization, created, fewshotkit_version
    /volumes/<vid>/image       float32 (Z, H, W), chunks (1, H, W): the pseudolabel input
                               (clipped raw MR / CT windowed to 0..255); the model input is
                               (image - norm_mean) / norm_std, computed on read
    /volumes/<vid>/label       uint8 (Z, H, W), chunks (1, H, W)
    /volumes/<vid>/class_pixels int64 (Z, C): pixels of class CLASS_VALUES[c] in slice z
    /volumes/<vid>             attrs: see VOLUME_ATTRS
    /pseudolabels/<set>/<vid>  int32 (Z, H, W), chunks (1, H, W); 0 = unlabelled, 1..K
    /pseudolabels/<set>        attrs: plugin, component, params (JSON), plugin_version, ndim,
                               created, labels_sha256
"""

from __future__ import annotations

#: 2 added ``label_codes``: the label files' code of each class value (version 1: each value is its own code)
SCHEMA_VERSION = 2
READABLE_VERSIONS = (1, 2)
FORMAT_NAME = "fewshotkit-slice-store"

VOLUMES = "volumes"
PSEUDOLABELS = "pseudolabels"
IMAGE = "image"
LABEL = "label"
CLASS_PIXELS = "class_pixels"

# root attributes
ATTR_SCHEMA = "schema_version"
ATTR_FORMAT = "format"
ATTR_PRESET = "preset"
ATTR_MODALITY = "modality"
ATTR_CLASSES = "classes"  # JSON {"1": "liver", ...}
ATTR_LABEL_CODES = "label_codes"  # JSON {"1": 500, ...}: class value -> the code the user's label files use
ATTR_VOLUME_ORDER = "volume_order"  # JSON list of volume ids in store order
ATTR_PREPROCESSING = "preprocessing"  # JSON, preset-wide parameters
ATTR_NORMALIZATION = "normalization"  # "volume" (per-volume z-score) or "global" (fold statistics)
ATTR_CREATED = "created"
ATTR_VERSION = "fewshotkit_version"

# per-volume attributes (VOLUMES/<vid>)
VOLUME_ATTRS = (
    "patient",  # patient id (folds keep a patient's volumes together)
    "source_image",  # source file paths
    "source_label",
    "affine",  # float64 (4, 4) of the source scan (NIfTI convention; x, y, z voxel axes of the source file)
    "spacing",  # float64 (3,) z, y, x in mm
    "original_shape",  # int (3,) source (Z, H, W) before in-plane changes
    "inplane",  # JSON list of geometry ops source -> stored: reorient, crop_pad, resize (fewshotkit.data.store.geometry)
    "preprocessing",  # JSON, per-volume parameters (clip value, window, ...)
    "norm_mean",  # z-score parameters of the model input
    "norm_std",
    "voxel_sum",  # sum, sum of squares and count of image voxels: global/fold statistics
    "voxel_sumsq",
    "voxel_count",
    "nifti_header",  # bytes of the source NIfTI header (absent for sources without one)
    "axis_codes",  # axis codes the arrays are stored in, e.g. "LPS"; absent where the preset made the affine up
    "image_sha256",  # sha256 hex of the image's bytes (float32 little-endian, C order); absent in older stores
    "label_sha256",  # sha256 hex of the label's bytes (uint8, C order); absent in older stores
)

# pseudolabel-set attributes
SET_PLUGIN = "plugin"
SET_COMPONENT = "component"
SET_PARAMS = "params"
SET_PLUGIN_VERSION = "plugin_version"
SET_NDIM = "ndim"
SET_LABELS_SHA256 = "labels_sha256"  # sha256 of the set's labels (see fingerprint.set_labels_sha256)
SET_MADE_WITH = "made_with"  # "numpy <version> (<SIMD targets>)": labels can depend on them (core.device.numpy_simd)
