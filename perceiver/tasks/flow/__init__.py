"""Optical flow (Perceiver IO, arXiv 2107.14795, Sec. 4.2 and App. H)."""
