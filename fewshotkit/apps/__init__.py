"""Applications built on evaluation and training: bench, segment, the demo and the Python API."""
