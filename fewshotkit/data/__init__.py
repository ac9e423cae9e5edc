"""Data: the volume store, dataset ingest, episode sampling and pseudolabel sets."""
