"""bench: a study of methods x datasets x settings, its cell cache and its tables."""
