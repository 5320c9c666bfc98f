"""mmengine's config style: variables of the config's own at the top level are accepted;
near-misses of keys the runner reads (typos) and mmcv 1.x keys are refused, naming the key."""
import pytest

from mmmsf.apis import load_config
from tests.conftest import ROOT

DEMO = f'{ROOT}/configs/demo/msf_r18_cifar10mini_ws.py'


def _write(tmp_path, body: str) -> str:
    p = tmp_path / 'cfg.py'
    p.write_text(f"_base_ = '{DEMO}'\n{body}")
    return str(p)


def test_helper_variables_as_mmpretrain_writes_them_are_accepted(tmp_path):
    cfg = load_config(_write(tmp_path, (
        "img_size = 16\n"
        "dataset_type = 'ImageFolder'\n"
        "weak = [dict(type='RandomResizedCrop', scale=img_size, crop_ratio_range=(0.2, 1.0)),\n"
        "        dict(type='RandomFlip', prob=0.5)]\n"
        "bgr_mean = [125.3, 123.0, 113.9]\n"
        "batch_size = 8\n"
        "crop_size = img_size\n"
        "train_dataloader = dict(batch_size=batch_size, dataset=dict(type=dataset_type))\n")))
    assert cfg.img_size == 16 and cfg.dataset_type == 'ImageFolder' and len(cfg.weak) == 2
    assert cfg.train_dataloader.batch_size == 8
    assert cfg.train_dataloader.dataset.type == 'ImageFolder'


@pytest.mark.parametrize('line, hint', [
    ('trian_dataloader = dict(batch_size=4)', "'trian_dataloader' (did you mean "
                                              "'train_dataloader'?)"),
    ("env_cgf = dict(cudnn_benchmark=True)", "'env_cgf' (did you mean 'env_cfg'?)"),
    ('knn_cgf = dict(ks=(1, ))', "'knn_cgf' (did you mean 'knn_cfg'?)"),
    ('randomnes = dict(seed=1)', "'randomnes' (did you mean 'randomness'?)"),
    ('modle = dict(topk=5)', "'modle' (did you mean 'model'?)"),
    ("lr_config = dict(policy='step')", "'lr_config' (an mmcv 1.x key that mmengine ignores: "
                                        'set param_scheduler instead)'),
    ("optimizer = dict(type='SGD', lr=0.1)", "'optimizer' (an mmcv 1.x key that mmengine "
                                             'ignores: set optim_wrapper.optimizer instead)'),
])
def test_near_misses_and_mmcv1_keys_are_refused(tmp_path, line, hint):
    with pytest.raises(KeyError) as e:
        load_config(_write(tmp_path, line + '\n'))
    msg = e.value.args[0]
    assert hint in msg and '\n' not in msg
