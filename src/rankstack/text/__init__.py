"""Lexical analysis for the inverted index."""

from rankstack.text.analyzer import Analyzer

__all__ = ["Analyzer"]
