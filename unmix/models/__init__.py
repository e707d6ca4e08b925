"""Spectrogram models: they map a mixture magnitude to a target magnitude and know nothing of files or STFTs."""

from unmix.models.openunmix import OpenUnmix
from unmix.models.unet import UNet

__all__ = ["OpenUnmix", "UNet"]
