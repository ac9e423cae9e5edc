"""Ingestion presets: source scans -> a slice store (one module per preset)."""
