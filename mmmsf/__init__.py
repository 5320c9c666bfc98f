"""mmmsf: mean-shift self-supervised learning (MSF, CMSF) on OpenMMLab."""
__version__ = '0.1.0'

from .utils.checkpoint import allow_mmengine_checkpoints

allow_mmengine_checkpoints()
