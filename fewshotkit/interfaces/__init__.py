"""The contracts every component honours. Each module imports torch: import them lazily.

- :mod:`.backbone`: image batch -> feature map.
- :mod:`.pseudolabeler`: a slice or volume -> integer segment ids (numpy, no torch).
- :mod:`.pooler`: support features + masks -> prototypes.
- :mod:`.classifier`: query features + prototypes -> per-class scores.
- :mod:`.method`: a whole few-shot segmenter.
- :mod:`.optimization`: parameter groups with their own learning rate, monitored scalars.
- :mod:`.postprocessor`: one query scan's prediction -> the cleaned prediction (numpy, no torch).
"""
