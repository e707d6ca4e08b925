"""Training data: datasets, source augmentations, input statistics and a synthetic MUSDB-layout generator.

Every dataset returns ``(x, y)`` float32 tensors: ``x`` the mixture ``(nb_channels, nb_timesteps)``; ``y`` the target
``(nb_channels, nb_timesteps)`` when built with one target name, or ``(nb_targets, nb_channels, nb_timesteps)`` when
built with a sequence of names. Randomness is explicit: item ``i`` of epoch ``e`` is drawn from a generator seeded
with ``(seed, e, i)`` (validation: ``(seed, i)``); call ``dataset.set_epoch(e)`` each epoch.
"""

from unmix.data.augment import (
    AUGMENTATIONS,
    ChannelSwap,
    Compose,
    ForceStereo,
    Gain,
    augmentations_from_names,
)
from unmix.data.base import BaseDataset, DatasetError
from unmix.data.factory import DATASET_BUILDERS, load_datasets
from unmix.data.folders import AlignedDataset, SourceFolderDataset
from unmix.data.musdb_dataset import MUSDB_SOURCES, MUSDBDataset
from unmix.data.spleeter_csv import SpleeterCSVDataset
from unmix.data.statistics import RunningMeanStd, compute_input_statistics
from unmix.data.synthetic import make_musdb_like
from unmix.data.trackfolder import FixedSourcesTrackFolderDataset, VariableSourcesTrackFolderDataset

__all__ = [
    "AUGMENTATIONS",
    "AlignedDataset",
    "BaseDataset",
    "ChannelSwap",
    "Compose",
    "DATASET_BUILDERS",
    "DatasetError",
    "FixedSourcesTrackFolderDataset",
    "ForceStereo",
    "Gain",
    "MUSDBDataset",
    "MUSDB_SOURCES",
    "RunningMeanStd",
    "SourceFolderDataset",
    "SpleeterCSVDataset",
    "VariableSourcesTrackFolderDataset",
    "augmentations_from_names",
    "compute_input_statistics",
    "load_datasets",
    "make_musdb_like",
]
