"""The small-scale fidelity study: the papers' ablations under one fixed compute budget.

Every run trains the same backbone, image size, batch and number of epochs on the same real
images, then scores the frozen backbone with kNN (1-NN / 20-NN, paper Table 2). What varies is
only the method: BYOL-asym (k = 1), MSF's view pairs (s/s, w/s, w/w) and top-k, CMSF's
constraints, and the "same view to both encoders" ablation. Outputs -- all generated from the
runs' logs, nothing typed by hand -- are a Markdown table shaped like the paper's Table 2, the
purity-vs-epoch plot (paper Fig. 4) and the collapse curve of the same-view run.
"""
import json
import os
import os.path as osp
import time
from typing import Dict, List, Optional, Sequence

from mmengine.config import Config

from mmmsf.datasets.label_subset import write_subset_list
from mmmsf.visualization.scalars import load_train_scalars, scalar_per_epoch
from .config import iter_hooks, load_config
from .evaluate import knn_from_config
from .train import disable_validation, prepare_train_cfg, train

MSF = 'configs/demo/msf_r18_cifar10mini_ws.py'
CMSF = 'configs/demo/cmsf_{}_r18_cifar10mini.py'

# (name, config, model options, views); the MSF rows state k (the demo config's own k = 1 suits
# the demo's short budget); views: 'ws' = weak target / strong online, 's' = one
# strong view given to both encoders. CMSF configs keep their own w/s pipelines (2Q's paper
# reading adds a third view).
STUDY_RUNS: List[dict] = [
    dict(name='random init', config=MSF, train=False),
    dict(name='BYOL-asym s/s (k=1)', config=MSF, model=dict(topk=1), views='ss'),
    dict(name='BYOL-asym w/w (k=1)', config=MSF, model=dict(topk=1), views='ww'),
    dict(name='MSF s/s', config=MSF, model=dict(topk=5), views='ss'),
    dict(name='MSF w/s', config=MSF, model=dict(topk=5), views='ws'),
    dict(name='MSF w/w', config=MSF, model=dict(topk=5), views='ww'),
    dict(name='MSF w/s k=2', config=MSF, model=dict(topk=2), views='ws'),
    dict(name='MSF w/s k=10', config=MSF, model=dict(topk=10), views='ws'),
    dict(name='MSF w/s k=20', config=MSF, model=dict(topk=20), views='ws'),
    dict(name='CMSF-2Q', config=CMSF.format('2q')),
    dict(name='CMSF-KM', config=CMSF.format('km')),
    dict(name='CMSF supervised', config=CMSF.format('sup')),
    dict(name='CMSF semi-sup. 10%', config=CMSF.format('semisup_10p')),
    dict(name='same view to both (MSF k=5)', config=MSF, model=dict(topk=5, online_view=0),
         views='s'),
]


def run_slug(name: str) -> str:
    return ''.join(c if c.isalnum() else '_' for c in name.lower()).strip('_')


def _views_pipeline(cfg: Config, views: str) -> list:
    pipes = dict(w=cfg.weak_pipeline, s=cfg.strong_pipeline)
    return [dict(type='LoadImageFromFile'),
            dict(type='MultiView', transforms=[pipes[v] for v in views]),
            dict(type='PackInputs')]


def labelled_subset_list(data_root: str, out: str, fraction: float = 0.1) -> str:
    """Write the first ``fraction`` of each class's sorted training images as a list file."""
    train = osp.join(data_root, 'train')
    lines = []
    for cls in sorted(os.listdir(train)):
        files = sorted(os.listdir(osp.join(train, cls)))
        lines += [f'{cls}/{f}' for f in files[:max(1, int(len(files) * fraction))]]
    return write_subset_list(lines, out)


def build_run_cfg(run: dict, budget: dict, work_dir: str, seed: int,
                  data_root: Optional[str], labelled_list: Optional[str]) -> Config:
    """The config of one study run with the shared budget applied."""
    cfg = load_config(run['config'], data_root=data_root)
    epochs = budget['epochs']
    cfg.merge_from_dict({
        'train_cfg.max_epochs': epochs,
        'param_scheduler': [dict(type='CosineAnnealingLR', T_max=epochs, by_epoch=True,
                                 begin=0, end=epochs)],
        'train_dataloader.batch_size': budget['batch_size'],
        'train_dataloader.num_workers': budget['num_workers'],
        'train_dataloader.persistent_workers': budget['num_workers'] > 0,
        'model.backbone.base_channels': budget['width'],
        'model.neck.in_channels': budget['width'] * 8,
        'model.memory_bank.size': budget['bank_size'],
        'randomness.seed': seed,
        'default_hooks.checkpoint': dict(type='CheckpointHook', interval=epochs,
                                         max_keep_ckpts=1),
        'default_hooks.logger.interval': 5,
    })
    if budget.get('ann_file'):
        cfg.train_dataloader.dataset.ann_file = budget['ann_file']
        cfg.knn_train_dataloader.dataset.ann_file = budget['ann_file']
    if budget.get('test_ann_file'):
        cfg.knn_test_dataloader.dataset.ann_file = budget['test_ann_file']
    if run.get('model'):
        cfg.merge_from_dict({f'model.{k}': v for k, v in run['model'].items()})
    if run.get('views'):
        cfg.train_dataloader.dataset.pipeline = _views_pipeline(cfg, run['views'])
    for hook in iter_hooks(cfg):
        if hook['type'] == 'PseudoLabelHook' and labelled_list:
            hook['labelled_list'] = labelled_list
        if hook['type'] == 'KMeansClusterHook' and budget.get('num_clusters'):
            hook['num_clusters'] = budget['num_clusters']
    # the study scores each run once, at the end (knn_from_config): no per-epoch validation
    return disable_validation(prepare_train_cfg(cfg, work_dir=work_dir))


def epoch_curves(work_dir: str, keys: Sequence[str] = ('purity', 'loss', 'target_std')
                 ) -> Dict[str, List[float]]:
    """Per-epoch means of logged scalars (those of ``keys`` the run logged), read with
    :func:`mmmsf.visualization.load_train_scalars`."""
    records = load_train_scalars(work_dir)
    out: Dict[str, List[float]] = {}
    for k in keys:
        if any(k in rec for rec in records):
            out[k] = [float(m) for m in scalar_per_epoch(records, k)[1]]
    return out


def run_study(out_dir: str, budget: dict, seeds: Sequence[int] = (0, ),
              data_root: Optional[str] = None, runs: Optional[List[dict]] = None,
              labelled_list: Optional[str] = None, log=print) -> dict:
    """Train and evaluate every run for every seed; write ``results.json`` in ``out_dir``.

    ``labelled_list`` is the semi-supervised run's labelled subset (default: the first 10% of
    each class of ``data_root``, or the config's own list for the bundled data).
    """
    runs = runs or STUDY_RUNS
    os.makedirs(out_dir, exist_ok=True)
    labelled = labelled_list
    if labelled is None and data_root:
        labelled = labelled_subset_list(data_root, osp.join(out_dir, 'labelled_10percent.txt'))
    results_path = osp.join(out_dir, 'results.json')
    results = json.load(open(results_path)) if osp.isfile(results_path) else {}
    for run in runs:
        for seed in seeds:
            key = f'{run["name"]}|seed{seed}'
            if key in results:
                log(f'[study] {key}: done already')
                continue
            work = osp.join(out_dir, 'runs', f'{run_slug(run["name"])}_seed{seed}')
            cfg = build_run_cfg(run, budget, work, seed, data_root, labelled)
            t0 = time.time()
            rec = dict(name=run['name'], seed=seed)
            if run.get('train', True):
                runner = train(cfg)
                ckpt = osp.join(cfg.work_dir, f'epoch_{runner.max_epochs}.pth')
                rec.update(epoch_curves(cfg.work_dir))
                del runner
            else:
                ckpt = None
            rec['knn'] = knn_from_config(cfg, ckpt)
            rec['seconds'] = time.time() - t0
            results[key] = rec
            with open(results_path, 'w') as f:
                json.dump(dict(results, _budget=budget), f, indent=1)
            results.pop('_budget', None)
            log(f'[study] {key}: {rec["knn"]} in {rec["seconds"]:.0f} s')
    return results
