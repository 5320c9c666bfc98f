from .checkpoint import allow_mmengine_checkpoints
from .detection_stack import detection_stack_missing, require_detection_stack

__all__ = ['allow_mmengine_checkpoints', 'detection_stack_missing', 'require_detection_stack']
