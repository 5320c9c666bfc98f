"""Detection transfer (paper Table 5): Faster R-CNN on PASCAL VOC through mmdet 3.x."""
from mmmsf.utils.detection_stack import detection_stack_missing

if detection_stack_missing():  # the light install: say how to get mmdet + mmcv ops
    raise ImportError(detection_stack_missing())

from .config import load_detection_config, pretrained_checkpoints, set_pretrained
from .finetune import (check_ap_evaluator, last_checkpoint, test_detector, train_detector,
                       voc_ap)
from .normalisation import check_normalisation, pretraining_normalisation
from .pretrained_resnet_init import (PretrainedResNetInit, init_resnet_from_weights,
                                     load_resnet_weights, read_checkpoint, resnet_weights)
from .repeat import format_runs, repeat_finetuning, summarise
from .res_layer_extra_norm import ResLayerExtraNorm
from .tiny_voc import CIFAR_TO_VOC, make_tiny_voc
from .voc_layout import check_voc_layout, check_voc_split

__all__ = [
    'load_detection_config', 'pretrained_checkpoints', 'set_pretrained', 'check_ap_evaluator',
    'last_checkpoint', 'test_detector', 'train_detector', 'voc_ap', 'check_normalisation',
    'pretraining_normalisation', 'PretrainedResNetInit', 'init_resnet_from_weights',
    'load_resnet_weights', 'read_checkpoint', 'resnet_weights', 'format_runs',
    'repeat_finetuning', 'summarise', 'ResLayerExtraNorm', 'CIFAR_TO_VOC', 'make_tiny_voc',
    'check_voc_layout', 'check_voc_split'
]
