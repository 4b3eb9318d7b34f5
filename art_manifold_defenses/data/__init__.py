"""Datasets as ``(x, y)``: float32 NCHW images in [0, 1] and int64 class labels.

``load_dataset(name, split, root)`` is the one entry point; see :mod:`.loaders` for the formats.
"""

from .download import DatasetFile, download_file, md5sum
from .loaders import DATASETS, dataset_info, default_root, load_dataset

__all__ = [
    "DATASETS",
    "DatasetFile",
    "dataset_info",
    "default_root",
    "download_file",
    "load_dataset",
    "md5sum",
]
