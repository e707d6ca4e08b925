"""Signal processing: STFT front ends, ratio masks and multichannel Wiener filtering."""

from unmix.dsp.masks import extend_masks, phase_estimates, ratio_masks
from unmix.dsp.stft import TorchSTFT, bandwidth_to_max_bin
from unmix.dsp.stft_spleeter import SpleeterSTFT
from unmix.dsp.wiener import expectation_maximization, wiener, wiener_filter

__all__ = [
    "SpleeterSTFT",
    "TorchSTFT",
    "bandwidth_to_max_bin",
    "expectation_maximization",
    "extend_masks",
    "phase_estimates",
    "ratio_masks",
    "wiener",
    "wiener_filter",
]
