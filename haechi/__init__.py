"""Haechi — an urban safety integrated platform (도시안전 통합플랫폼)."""

__version__ = "0.1.0"
