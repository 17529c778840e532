"""Composition of stages: sequences, cut-offs and fusion."""

from rankstack.pipeline.fusion import Fusion, fuse
from rankstack.pipeline.stage import CutOff, Pipeline, Stage

__all__ = ["CutOff", "Fusion", "Pipeline", "Stage", "fuse"]
