"""Evaluation: metrics, the few-shot protocol, inference with a trained method, results and figures.

Only :mod:`.inference` imports torch (inside functions); the rest is numpy / matplotlib.
"""
