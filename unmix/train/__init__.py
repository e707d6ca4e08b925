"""Training: Open-Unmix and U-Net target models, per target on magnitudes or end to end through the Separator.

``unmix.train.train(config, folder)`` trains into a run folder (config.json, checkpoints, upstream-layout model
files, evaluation.csv, images/, audio/, runs/) that ``unmix.load_separator(folder)`` loads directly. See
docs/training.md.
"""

from unmix.train.checkpoint import EarlyStopping, TrainState, load_checkpoint, save_checkpoint
from unmix.train.config import TEMPLATES, TrainConfig, TrainingError, apply_overrides, template
from unmix.train.loop import LossModule, Trainer, TrainResult, train
from unmix.train.losses import spectrogram_loss, waveform_loss
from unmix.train.run_folder import RunFolder, read_evaluation

__all__ = [
    "TEMPLATES",
    "EarlyStopping",
    "LossModule",
    "RunFolder",
    "TrainConfig",
    "TrainResult",
    "TrainState",
    "Trainer",
    "TrainingError",
    "apply_overrides",
    "load_checkpoint",
    "read_evaluation",
    "save_checkpoint",
    "spectrogram_loss",
    "template",
    "train",
    "waveform_loss",
]
