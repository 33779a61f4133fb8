"""Numpy-only image helpers: CT windows, HU <-> model range, the procedural phantom, resampling."""
