"""Composition of stages: sequences, cut-offs and fusion."""

from rankstack.pipeline.fusion import Fusion, fuse
from rankstack.pipeline.stage import CutOff, FromRun, Pipeline, Stage

__all__ = ["CutOff", "FromRun", "Fusion", "Pipeline", "Stage", "fuse"]
