"""On the tiny VOC set, a few hundred CPU iterations of Faster R-CNN C4 (mmdet, the smoke
config) raise AP50 well above the untrained detector's: the detection path really learns.

This is the suite's slowest test (a few minutes); the README's "Detection" section has the
longer smoke run.
"""
import pytest
from mmengine.config import Config

from mmmsf.detection import load_detection_config, make_tiny_voc
from mmmsf.detection.finetune import last_checkpoint, test_detector, train_detector
from .conftest import MINI, ROOT

TINY = f'{ROOT}/configs/benchmarks/detection/faster-rcnn_r18-c4_tiny-voc_cpu.py'
ITERS = 200


def tiny_cfg(devkit: str, iters: int) -> Config:
    return load_detection_config(TINY, {
        'train_cfg.max_iters': iters, 'train_cfg.val_interval': 10 ** 6,
        'default_hooks.checkpoint.interval': iters, 'default_hooks.logger.interval': 50,
        'param_scheduler.1.end': iters, 'param_scheduler.1.milestones': [int(iters * 0.8)],
    }, data_root=devkit)


@pytest.mark.slow
def test_few_hundred_iterations_raise_ap50_well_above_untrained(tmp_path):
    make_tiny_voc(MINI, str(tmp_path), seed=0)  # 24 + 24 trainval, 24 test images
    devkit = str(tmp_path / 'VOCdevkit')
    untrained = test_detector(tiny_cfg(devkit, ITERS), None, str(tmp_path / 'untrained'))
    work = str(tmp_path / 'train')
    train_detector(tiny_cfg(devkit, ITERS), work, scratch=True, seed=0)
    trained = test_detector(tiny_cfg(devkit, ITERS), last_checkpoint(work),
                            str(tmp_path / 'test'))
    print(f'untrained {untrained}; {ITERS} iterations {trained}')
    assert untrained['AP50'] < 3.0
    assert trained['AP50'] >= untrained['AP50'] + 5.0, (untrained, trained)
    assert trained['AP'] > untrained['AP']
