"""``--resume`` of a mid-epoch checkpoint on another number of processes (and another global
batch) through ``tools/dist_train.sh``: the interrupted epoch continues after the images already
trained -- every image of it is trained exactly once -- or the resume is refused with the reason
when the processes cannot each skip the same number of images."""
import json
import os.path as osp
import subprocess
import sys

import pytest
import torch

from tests.conftest import ROOT
from tests.test_tools.launch_utils import clean_env, free_port, tiny_run_config

N = 30  # 3 images of each of the 10 classes


def _config(tmp_path, out, tag: str) -> str:
    base = tiny_run_config(tmp_path, str(out), per_class=3, bank=72, epochs=2)
    cfg = tmp_path / f'{tag}.py'
    cfg.write_text(f"""_base_ = {base!r}
default_hooks = dict(checkpoint=dict(type='CheckpointHook', interval=1, by_epoch=False,
                                     max_keep_ckpts=-1))
custom_imports = dict(imports=['tests.test_tools.sample_record_hook'], allow_failed_imports=False)
custom_hooks = [dict(type='MomentumUpdateHook', momentum=0.99),
                dict(type='NNMemoryBankHook', interval=1), dict(type='RandomStateHook'),
                dict(type='SampleRecordHook', out_dir={str(out)!r}, tag={tag!r})]
""")
    return str(cfg)


def _launch(tmp_path, cfg, nproc: int, batch: int, work, *options, check: bool = True,
            sharded: bool = False):
    env = clean_env(PORT=free_port(), PYTHON=sys.executable)
    r = subprocess.run(['bash', osp.join(ROOT, 'tools/dist_train.sh'), cfg, str(nproc),
                        '--work-dir', str(work), '--no-validate', *options, '--cfg-options',
                        f'train_dataloader.batch_size={batch}',
                        f'model.memory_bank.sharded={sharded}'],
                       env=env, capture_output=True, text=True, timeout=600, cwd=str(tmp_path))
    if check:
        assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
    return r


def _epoch_images(out, tag: str, world: int, epoch: int):
    """Every image trained in ``epoch`` by the ``world`` ranks of run ``tag``, in a list."""
    images = []
    for r in range(world):
        rec = torch.load(out / f'{tag}_rank{r}.pt', weights_only=False)
        assert rec['world'] == world
        images += [i for e, idx in rec['steps'] if e == epoch for i in idx]
    return images


@pytest.mark.slow
@pytest.mark.parametrize('first, then, sharded', [((2, 3), (3, 3), False),
                                                   ((3, 2), (2, 9), False),
                                                   ((2, 3), (3, 3), True)])
def test_mid_epoch_resume_on_another_world_size_trains_each_image_once(tmp_path, first, then,
                                                                       sharded):
    """(processes, per-process batch) of the first run and of the resumed one: 2 x 3 -> 3 x 3
    and 3 x 2 -> 2 x 9 (a replicated and a sharded bank); the checkpoint is iter_7, two steps
    (12 images) into epoch 2."""
    out = tmp_path / 'records'
    out.mkdir()
    work = tmp_path / 'work'
    _launch(tmp_path, _config(tmp_path, out, 'first'), *first, work, sharded=sharded)
    ckpt = work / 'iter_7.pth'
    resumed = _launch(tmp_path, _config(tmp_path, out, 'resumed'), *then, work, '--resume',
                      str(ckpt), sharded=sharded)
    assert f'resuming epoch 2 after 12 of its {N} images' in resumed.stdout + resumed.stderr
    before = []  # the images of the first run's two epoch-2 steps up to the checkpoint
    for r in range(first[0]):
        rec = torch.load(out / f'first_rank{r}.pt', weights_only=False)
        before += [i for _, idx in [s for s in rec['steps'] if s[0] == 1][:2] for i in idx]
    after = _epoch_images(out, 'resumed', then[0], 1)
    assert len(before) == 12 and len(after) == N - 12
    assert sorted(before + after) == list(range(N))  # every image of epoch 2 exactly once
    # the uninterrupted run, too, trained every image of epoch 2 once
    assert sorted(_epoch_images(out, 'first', first[0], 1)) == list(range(N))


@pytest.mark.slow
def test_a_world_size_that_cannot_continue_the_epoch_is_refused(tmp_path):
    out = tmp_path / 'records'
    out.mkdir()
    work = tmp_path / 'work'
    _launch(tmp_path, _config(tmp_path, out, 'first'), 2, 4, work)  # 8 images a step
    r = _launch(tmp_path, _config(tmp_path, out, 'resumed'), 3, 4, work, '--resume',
                str(work / 'iter_4.pth'), check=False)  # epoch 2 after 1 step: 8 images
    assert r.returncode != 0
    text = r.stdout + r.stderr
    assert ('cannot resume epoch 2 exactly on 3 processes: the checkpoint was written after 8 '
            'of its images') in text
    assert 'Resume this checkpoint on 1, 2, 4, 8 processes' in text
    assert 'epoch_1.pth' in text
    assert not (out / 'resumed_rank0.pt').exists()


ITER_SCHEDULE = ("\nparam_scheduler = [dict(type='CosineAnnealingLR', T_max=2, by_epoch=True, "
                 "begin=0, end=2, convert_to_iter_based=True)]\n")


def _logged_lr(work) -> dict:
    """{step: lr} of the latest run of ``work`` that logged a step."""
    runs = sorted(d for d in work.iterdir() if (d / 'vis_data' / 'scalars.json').is_file())
    lines = (runs[-1] / 'vis_data' / 'scalars.json').read_text().splitlines()
    return {r['step']: r['lr'] for r in map(json.loads, lines) if 'lr' in r}


@pytest.mark.slow
def test_an_iteration_based_lr_schedule_resumes_only_on_its_global_batch(tmp_path):
    """A cosine converted to iterations (5 steps of 6 images an epoch, 10 in all): resumed from
    iter_7 on 3 processes of 3 images it would have gone on in the first run's steps (was:
    steps 8 and 9 at that run's LRs of steps 8 and 9, the schedule left before its end);
    it is refused before any step. On 3 processes of 2 images (the same global batch) it
    continues with the uninterrupted run's LR at every step."""
    out = tmp_path / 'records'
    out.mkdir()
    work = tmp_path / 'work'

    def config(tag):
        path = _config(tmp_path, out, tag)
        with open(path, 'a') as f:
            f.write(ITER_SCHEDULE)
        return path

    _launch(tmp_path, config('first'), 2, 3, work)
    full = _logged_lr(work)
    assert sorted(full) == list(range(1, 11)) and full[10] < full[7] < full[1]
    ckpt = str(work / 'iter_7.pth')
    r = _launch(tmp_path, config('refused'), 3, 3, work, '--resume', ckpt, check=False)
    assert r.returncode != 0
    assert ('cannot resume this checkpoint with global batch 9 (3 processes x '
            'train_dataloader.batch_size=3): param_scheduler CosineAnnealingLR counts '
            'iterations') in r.stdout + r.stderr
    assert 'Resume with global batch 6: train_dataloader.batch_size=2 on 3 processes' \
        in r.stdout + r.stderr
    assert not (out / 'refused_rank0.pt').exists()  # not one step
    _launch(tmp_path, config('resumed'), 3, 2, work, '--resume', ckpt)
    resumed = _logged_lr(work)
    assert resumed == {step: full[step] for step in (8, 9, 10)}
