"""CLEVR case study (thesis §4.3): CLEVR-format data and the studies built on it."""
