"""Alias of ``tools/model_converters/mmmsf_to_torchvision.py``, the one torchvision export.

    python tools/extract_backbone.py CHECKPOINT OUT.pth [--prefix target_backbone.]
The result loads into ``torchvision.models.resnet50()`` (``strict=False``: no ``fc``) and into
mmdet's ``ResNet`` via ``init_cfg=dict(type='Pretrained', checkpoint=OUT.pth)``.
"""
import os.path as osp
import runpy

if __name__ == '__main__':
    runpy.run_path(osp.join(osp.dirname(osp.abspath(__file__)), 'model_converters',
                            'mmmsf_to_torchvision.py'), run_name='__main__')
