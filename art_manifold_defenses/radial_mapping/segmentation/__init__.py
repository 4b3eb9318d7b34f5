"""Segmentation path of paper 001: a synthetic shapes task, the Dice metric, DAG, and U-Net training."""

from .dag import DenseAdversaryGeneration
from .data import make_shapes_dataset
from .dice import dice_score, predict_masks, segmentation_dice
from .training import train_segmentation

__all__ = [
    "DenseAdversaryGeneration",
    "dice_score",
    "make_shapes_dataset",
    "predict_masks",
    "segmentation_dice",
    "train_segmentation",
]
