"""Optical flow ([P] §4.2, App. H): generated pairs, the task, inference."""
