"""CAReDiO: cultural alignment data optimized for representativeness and distinctiveness."""

__version__ = "0.1.0"
