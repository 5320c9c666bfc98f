from .feature_dataset import FeatureDataset
from .image_folder import ImageFolder
from .samplers import ResumableSampler
from .transforms import *  # noqa: F401,F403

__all__ = ['FeatureDataset', 'ImageFolder', 'ResumableSampler']
