"""Composition of stages."""

from rankstack.pipeline.stage import CutOff, Pipeline, Stage

__all__ = ["CutOff", "Pipeline", "Stage"]
