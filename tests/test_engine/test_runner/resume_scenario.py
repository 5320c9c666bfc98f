"""Kill-and-resume scenario in the demo's default data settings (loader workers, persistent
workers), run through ``tools/train.py`` in fresh processes (1 process, or N gloo processes with
torchrun), killed with SIGKILL mid-epoch. Runs that are not killed may share fresh processes,
one after the other (each launch spends seconds importing torch and mmengine): the
uninterrupted references of several variants (:func:`reference_runs`), and a scenario's two
resumed runs; every killed run has its own.
Used by test_exact_resume.py; also a script that prints the loss traces of a checkout:

    python tests/test_engine/test_runner/resume_scenario.py [--root CHECKOUT] [--nproc 2] \
        [msf|km|2q|2q_prev|sup|semisup_10p ...]
"""
import json
import os
import os.path as osp
import signal
import socket
import subprocess
import sys
from typing import Dict, List, Optional

HERE = osp.dirname(osp.abspath(__file__))
ROOT = osp.dirname(osp.dirname(osp.dirname(HERE)))
DEMOS = {'msf': 'msf_r18_cifar10mini_ws.py', 'km': 'cmsf_km_r18_cifar10mini.py',
         '2q': 'cmsf_2q_r18_cifar10mini.py', '2q_prev': 'cmsf_2q_prev_r18_cifar10mini.py',
         'sup': 'cmsf_sup_r18_cifar10mini.py', 'semisup_10p': 'cmsf_semisup_10p_r18_cifar10mini.py'}
PER_CLASS, BATCH, EPOCHS = 8, 16, 2     # 80 images, global batch 16: 5 iterations per epoch
CKPT_EVERY, KILL_AT = 3, 8              # iteration checkpoints 3, 6, 9; killed after iteration 8
VAL_PER_CLASS = 2                       # online kNN queries: 20 test images

PROBE = '''
import json, os, signal
import torch.distributed as dist
from mmengine.hooks import Hook
from mmmsf.registry import HOOKS


class Interrupted(Exception):
    """The run stopped by the probe's ``stop='raise'`` (the wrapper goes on with the next)."""


@HOOKS.register_module(force=True)
class LossProbeHook(Hook):
    """Appends (iteration, loss) of every step to losses_rank<R>.jsonl; stops the run after
    iteration ``kill_at`` (once every rank is there, so rank 0's checkpoint is written): SIGKILL,
    or ``stop='raise'``: :class:`Interrupted` on every rank, as Ctrl-C stops all processes.
    After training each rank saves what it ended with to final_rank<R>.pt: the model's state
    dict (weights, EMA target, bank, caches, selectors' tables), the optimizer's state and the
    global random streams."""
    priority = 'LOWEST'

    def __init__(self, out_dir, kill_at=-1, stop='kill'):
        self.out_dir, self.kill_at, self.stop = out_dir, kill_at, stop

    def after_train(self, runner):
        import numpy as np, random, torch
        rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
        model = runner.model.module if hasattr(runner.model, 'module') else runner.model
        torch.save(dict(model={k: v.detach().clone() for k, v in model.state_dict().items()},
                        optim=runner.optim_wrapper.state_dict(),
                        rng=dict(torch=torch.get_rng_state(), python=random.getstate(),
                                 numpy=np.random.get_state(legacy=True)[1].copy())),
                   os.path.join(self.out_dir, f'final_rank{rank}.pt'))

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
        with open(os.path.join(self.out_dir, f'losses_rank{rank}.jsonl'), 'a') as f:
            f.write(json.dumps([runner.iter + 1, float(outputs['loss'])]) + '\\n')
        if runner.iter + 1 == self.kill_at:
            if dist.is_available() and dist.is_initialized():
                dist.barrier()
            if self.stop == 'raise':
                raise Interrupted(f'stopped after iteration {self.kill_at}')
            os.kill(os.getpid(), signal.SIGKILL)
'''
WRAPPER = '''
import gc, json, multiprocessing, runpy, sys
import loss_probe  # noqa: F401  (registers LossProbeHook)
train = sys.argv.pop(1)
if sys.argv[1] == '--runs':  # several runs one after the other: [args of run 1, ...]
    runs = json.load(open(sys.argv[2]))
    extra = sys.argv[3:]
else:
    runs, extra = [sys.argv[1:]], []
for args in runs:
    sys.argv = [train, *args, *extra]
    try:
        runpy.run_path(train, run_name='__main__')  # train() ends its loader workers itself
    except loss_probe.Interrupted:  # a run stopped mid-epoch by the probe; the next resumes it
        pass
    assert not multiprocessing.active_children(), 'loader workers outlived the run'
    gc.collect()
'''


def _subset(tmp: str, root: str, split: str = 'train', per_class: int = PER_CLASS) -> str:
    mini = osp.join(root, 'data', 'cifar10_mini', split)
    lines = [f'{c}/{i:04d}.jpg' for c in sorted(os.listdir(mini)) for i in range(per_class)]
    path = osp.join(tmp, f'{split}_subset.txt')
    with open(path, 'w') as f:
        f.write('\n'.join(lines) + '\n')
    return path


def write_config(name: str, tmp: str, root: str = ROOT, nproc: int = 1,
                 per_class: int = PER_CLASS, batch: int = BATCH, epochs: int = EPOCHS,
                 ckpt_every: int = CKPT_EVERY, bank: int = 128) -> str:
    """The demo config, CPU-tiny (width 8; by default 80 images, global batch 16, 2 epochs,
    a bank of 128) with its data settings (loader workers, persistent workers) left alone.
    The online kNN validation still runs after every epoch, on the training images and 2 test
    images per class."""
    from mmengine.config import Config
    cfg = Config.fromfile(osp.join(root, 'configs', 'demo', DEMOS[name]))
    assert cfg.train_dataloader.num_workers > 0 and cfg.train_dataloader.persistent_workers
    cfg.merge_from_dict({
        'model.backbone.base_channels': 8,
        'model.neck.in_channels': 64, 'model.neck.hid_channels': 64,
        'model.neck.out_channels': 32, 'model.predictor.in_channels': 32,
        'model.predictor.hid_channels': 64, 'model.predictor.out_channels': 32,
        'model.memory_bank.size': bank, 'model.memory_bank.dim': 32,
        'train_dataloader.batch_size': batch // nproc,
        'train_dataloader.dataset.data_root': osp.join(root, 'data', 'cifar10_mini'),
        'train_dataloader.dataset.ann_file': _subset(tmp, root, per_class=per_class),
        'knn_train_dataloader.dataset.data_root': osp.join(root, 'data', 'cifar10_mini'),
        'knn_train_dataloader.dataset.ann_file': _subset(tmp, root, per_class=per_class),
        'val_dataloader.dataset.data_root': osp.join(root, 'data', 'cifar10_mini'),
        'val_dataloader.dataset.ann_file': _subset(tmp, root, 'test', VAL_PER_CLASS),
        'train_cfg.max_epochs': epochs,
        'param_scheduler': [dict(type='CosineAnnealingLR', T_max=epochs, by_epoch=True,
                                 begin=0, end=epochs)],
        'default_hooks.logger.interval': 1,
        'default_hooks.checkpoint': dict(type='CheckpointHook', interval=1, by_epoch=True,
                                         max_keep_ckpts=10),
    })
    def adapt(h):
        h = dict(h)
        if h['type'] == 'KMeansClusterHook':
            h['num_clusters'] = 4
        if h['type'] == 'PseudoLabelHook':
            mini = osp.join(root, 'data', 'cifar10_mini', 'train')
            lab = osp.join(tmp, 'labelled.txt')
            with open(lab, 'w') as f:
                f.write('\n'.join(f'{c}/{i:04d}.jpg' for c in sorted(os.listdir(mini))
                                  for i in range(2)) + '\n')
            h['labelled_list'], h['batch_size'] = lab, 8
        return h

    # method hooks are keyed in default_hooks (older checkouts list them in custom_hooks)
    for key, h in list(cfg.default_hooks.items()):
        if isinstance(h, dict):
            cfg.default_hooks[key] = adapt(h)
    hooks = [adapt(h) for h in cfg.get('custom_hooks', [])]
    # mid-epoch checkpoints next to the epoch ones
    hooks.append(dict(type='CheckpointHook', interval=ckpt_every, by_epoch=False,
                      max_keep_ckpts=10))
    cfg.custom_hooks = hooks
    path = osp.join(tmp, f'{name}.py')
    cfg.dump(path)
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _probed_config(cfg_path: str, work_dir: str, kill_at: int = -1, stop: str = 'kill') -> str:
    """The config plus the probe hook, in ``work_dir``."""
    os.makedirs(work_dir, exist_ok=True)
    hook = dict(type='LossProbeHook', out_dir=work_dir, kill_at=kill_at, stop=stop)
    with open(cfg_path) as f:
        text = f.read()
    # a stopping run has its own file: its resumed run may be written beside it before either runs
    probed = osp.join(work_dir, 'probed_config.py' if kill_at < 0 else
                      f'probed_config_stop{kill_at}.py')
    with open(probed, 'w') as f:
        f.write(text + f'\ncustom_hooks = custom_hooks + [{hook!r}]\n')
    return probed


def train(cfg_path: str, work_dir: str, tmp: str, nproc: int, root: str, kill_at: int = -1,
          extra: List[str] = ()) -> subprocess.CompletedProcess:
    """tools/train.py of ``root`` on ``cfg_path`` with the loss probe, in fresh processes."""
    args = [_probed_config(cfg_path, work_dir, kill_at), '--work-dir', work_dir, *extra]
    return _launch(args, work_dir, tmp, nproc, root)


def _launch_runs(runs: List[List[str]], tmp: str, nproc: int, root: str,
                 name: str) -> subprocess.CompletedProcess:
    """Several runs of tools/train.py (``runs``: the arguments of each), one after the other
    in the same fresh processes; their list goes to ``tmp/<name>.json``."""
    path = osp.join(tmp, f'{name}.json')
    with open(path, 'w') as f:
        json.dump(runs, f)
    return _launch(['--runs', path], tmp, tmp, nproc, root)


def _launch(args: List[str], out_dir: str, tmp: str, nproc: int, root: str
            ) -> subprocess.CompletedProcess:
    with open(osp.join(tmp, 'loss_probe.py'), 'w') as f:
        f.write(PROBE)
    with open(osp.join(tmp, 'train_probed.py'), 'w') as f:
        f.write(WRAPPER)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([root, tmp]), OMP_NUM_THREADS='1',
               MKL_NUM_THREADS='1')
    env.pop('MMMSF_ERROR_DIR', None)
    train_py = osp.join(root, 'tools', 'train.py')
    if nproc == 1:
        cmd = [sys.executable, osp.join(tmp, 'train_probed.py'), train_py, *args]
    else:
        cmd = [sys.executable, '-m', 'torch.distributed.run', f'--nproc_per_node={nproc}',
               '--master_addr=127.0.0.1', f'--master_port={_free_port()}',
               osp.join(tmp, 'train_probed.py'), train_py, *args, '--launcher', 'pytorch']
    # Output to files, not pipes: the loader workers of a SIGKILLed process would hold pipes
    # open until their parent watchdog notices (seconds); their process group is ended here.
    with open(osp.join(out_dir, 'stdout.txt'), 'w+') as out, \
            open(osp.join(out_dir, 'stderr.txt'), 'w+') as err:
        proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=out, stderr=err,
                                start_new_session=True)
        try:
            rc = proc.wait(timeout=900)
        finally:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        out.seek(0), err.seek(0)
        return subprocess.CompletedProcess(cmd, rc, out.read(), err.read())


def probed_losses(work_dir: str, rank: int = 0) -> Dict[int, float]:
    """{iteration: loss} of every step the probe recorded (a resumed run overwrites)."""
    out: Dict[int, float] = {}
    with open(osp.join(work_dir, f'losses_rank{rank}.jsonl')) as f:
        for line in f:
            it, loss = json.loads(line)
            out[it] = loss
    return out


def logged_losses(work_dir: str) -> Dict[int, float]:
    """{step: loss} of the logger's scalars of the work dir's latest run."""
    runs = sorted(d for d in os.listdir(work_dir) if osp.isfile(
        osp.join(work_dir, d, 'vis_data', 'scalars.json')))
    out = {}
    with open(osp.join(work_dir, runs[-1], 'vis_data', 'scalars.json')) as f:
        for line in f:
            rec = json.loads(line)
            if 'loss' in rec:
                out[int(rec['step'])] = float(rec['loss'])
    return out


def reference_runs(names: List[str], tmp: str, nproc: int = 1, root: str = ROOT
                   ) -> Dict[str, dict]:
    """The uninterrupted run of each of ``names``, one after the other in the same (fresh)
    processes: ``{name: dict(cfg=config path, probed=..., logged=...)}``. The config is the one
    to give :func:`run_scenario` as ``reference``."""
    runs, out = [], {}
    for name in names:
        d = osp.join(tmp, name)
        os.makedirs(d, exist_ok=True)
        cfg = write_config(name, d, root, nproc)
        full = osp.join(d, 'full')
        runs.append([_probed_config(cfg, full), '--work-dir', full])
        out[name] = dict(cfg=cfg, full=full)
    p = _launch_runs(runs, tmp, nproc, root, 'runs')
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    for rec in out.values():
        rec.update(probed=probed_losses(rec['full']), logged=logged_losses(rec['full']))
    return out


def run_scenario(name: str, tmp: str, nproc: int = 1, root: str = ROOT,
                 reference: Optional[dict] = None) -> Dict[str, dict]:
    """Uninterrupted run (or ``reference``, from :func:`reference_runs`, and its config); run
    killed after iteration 8 (mid-epoch 2) and resumed with --resume (from iteration 6); the
    epoch-1 checkpoint resumed in a new work dir. Returns each run's probed and logged losses."""
    cut, end = (osp.join(tmp, d) for d in ('cut', 'end'))
    res = {}
    if reference is None:
        cfg = write_config(name, tmp, root, nproc)
        full = osp.join(tmp, 'full')
        p = train(cfg, full, tmp, nproc, root)
        assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
        res['full'] = dict(probed=probed_losses(full), logged=logged_losses(full))
    else:
        cfg = reference['cfg']
        res['full'] = dict(probed=reference['probed'], logged=reference['logged'])
    p = train(cfg, cut, tmp, nproc, root, kill_at=KILL_AT)
    assert p.returncode != 0  # killed
    assert osp.isfile(osp.join(cut, f'iter_{2 * CKPT_EVERY}.pth')), p.stderr[-3000:]
    os.replace(osp.join(cut, 'losses_rank0.jsonl'), osp.join(cut, 'killed_losses_rank0.jsonl'))
    # both resumed runs in one launch, each a new Runner: --resume in the killed run's folder
    # (from iteration 6), then the epoch-1 checkpoint in a new folder
    p = _launch_runs([[_probed_config(cfg, cut), '--work-dir', cut, '--resume'],
                      [_probed_config(cfg, end), '--work-dir', end, '--resume',
                       osp.join(cut, 'epoch_1.pth')]], tmp, nproc, root, 'resumed_runs')
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    res['mid'] = dict(probed=probed_losses(cut), logged=logged_losses(cut))
    res['end'] = dict(probed=probed_losses(end), logged=logged_losses(end))
    return res


def interrupted_runs(names: List[str], tmp: str, stop_at: int, nproc: int = 2,
                     root: str = ROOT, extra: Optional[Dict[str, List[str]]] = None,
                     **config) -> Dict[str, dict]:
    """For each of ``names``, in one launch (the same fresh processes, one run after the
    other): the uninterrupted run; a run stopped on every rank after iteration ``stop_at``
    (:class:`Interrupted`, raised after rank 0 wrote that iteration's checkpoints); and that
    run resumed with ``--resume`` in its work dir (from its latest checkpoint). ``extra``:
    more tools/train.py arguments of a name's three runs; ``config``: :func:`write_config`'s
    sizes. Returns ``{name: dict(full=work dir, cut=work dir)}``; each
    holds every rank's ``final_rank<R>.pt`` and the probed losses."""
    runs, out = [], {}
    for name in names:
        d = osp.join(tmp, name)
        os.makedirs(d, exist_ok=True)
        cfg = write_config(name, d, root, nproc, **config)
        full, cut = osp.join(d, 'full'), osp.join(d, 'cut')
        more = list((extra or {}).get(name, []))
        runs += [[_probed_config(cfg, full), '--work-dir', full, *more],
                 [_probed_config(cfg, cut, kill_at=stop_at, stop='raise'), '--work-dir', cut,
                  *more],
                 [_probed_config(cfg, cut), '--work-dir', cut, '--resume', *more]]
        out[name] = dict(full=full, cut=cut)
    p = _launch_runs(runs, tmp, nproc, root, 'runs')
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    return out


def format_traces(res: Dict[str, dict]) -> str:
    full = res['full']['probed']
    lines = ['step  uninterrupted  resumed@6(mid-epoch 2)  resumed@epoch-1-end']
    for it in sorted(full):
        mid = res['mid']['probed'].get(it)
        end = res['end']['probed'].get(it)
        lines.append(f'{it:4d}  {full[it]:.6f}       '
                     + (f'{mid:.6f}' if mid is not None else '   -    ') + '               '
                     + (f'{end:.6f}' if end is not None else '   -    '))
    return '\n'.join(lines)


if __name__ == '__main__':
    import argparse
    import tempfile
    ap = argparse.ArgumentParser()
    ap.add_argument('names', nargs='*', default=['msf'])
    ap.add_argument('--root', default=ROOT)
    ap.add_argument('--nproc', type=int, default=1)
    a = ap.parse_args()
    for n in a.names:
        with tempfile.TemporaryDirectory() as d:
            r = run_scenario(n, d, a.nproc, osp.abspath(a.root))
            print(f'== {n}, {a.nproc} process(es), root {a.root}')
            print(format_traces(r))
            diffs = [abs(r[k]['probed'][i] - r['full']['probed'][i])
                     for k in ('mid', 'end') for i in r[k]['probed']]
            print(f'max |resumed - uninterrupted| = {max(diffs):.3g}')
