"""Loading separators: model folders, Spleeter configurations and named pretrained models."""

from unmix.pretrained.loading import load_separator, load_target_models

__all__ = ["load_separator", "load_target_models"]
