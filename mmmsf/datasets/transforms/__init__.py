from .aug_seed import RecordAugSeed
from .color_jitter import ColorJitter
from .formatting import PackInputs
from .gaussian_blur import GaussianBlur
from .loading import LoadImageFromFile
from .multi_view import MultiView
from .random_resized_crop import RandomResizedCrop

__all__ = ['ColorJitter', 'PackInputs', 'GaussianBlur', 'LoadImageFromFile', 'MultiView',
           'RandomResizedCrop', 'RecordAugSeed']
