"""Transfer linear evaluation of one checkpoint on a list of ImageFolder datasets (Table 4).

Each dataset is a folder ``<data_root>/<split>/<class>/<image>`` with a ``train`` and a ``test``
split (and optionally ``val``); the ten datasets of the paper are such folders once prepared.
See :mod:`mmmsf.evaluation.transfer` for the protocol.
"""
import copy
import os.path as osp
from typing import Dict, List, Optional, Sequence

import torch
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmengine.registry import init_default_scope
from mmengine.runner import Runner

from mmmsf.evaluation.feature_extraction import extract_features
from mmmsf.evaluation.results_io import checkpoint_results_path, write_results
from mmmsf.evaluation.transfer import transfer_linear_eval
from mmmsf.registry import MODELS

DATASET_KEYS = {'name', 'data_root', 'train', 'val', 'test', 'metric'}


def parse_dataset_args(items: Sequence[str]) -> List[dict]:
    """``NAME=ROOT[:METRIC]`` command-line items -> dataset specs (splits train/test)."""
    out = []
    for item in items:
        if '=' not in item:
            raise ValueError(f'dataset {item!r}: write NAME=ROOT or NAME=ROOT:mean_per_class.')
        name, root = item.split('=', 1)
        metric = 'top1'
        if root.endswith((':top1', ':mean_per_class')):
            root, metric = root.rsplit(':', 1)
        out.append(dict(name=name, data_root=root, metric=metric))
    return out


def _check_spec(spec: dict) -> dict:
    unknown = set(spec) - DATASET_KEYS
    if unknown or 'name' not in spec or 'data_root' not in spec:
        raise KeyError(f'transfer dataset {spec}: needs name and data_root, may have '
                       f'{sorted(DATASET_KEYS)}; unknown {sorted(unknown)}.')
    spec = dict(dict(train='train', val=None, test='test', metric='top1'), **spec)
    for split in ('train', 'test') + (('val', ) if spec['val'] else ()):
        folder = osp.join(spec['data_root'], spec[split])
        if not osp.isdir(folder):
            raise FileNotFoundError(f"transfer dataset {spec['name']}: split folder {folder!r} "
                                    'does not exist (layout <root>/<split>/<class>/<image>).')
    return spec


def transfer_eval(cfg: Config, checkpoint: Optional[str],
                  datasets: Optional[List[dict]] = None, cache_dir: Optional[str] = None,
                  device: Optional[str] = None) -> Dict[str, Dict[str, float]]:
    """Evaluate ``checkpoint`` (None: random init) on every dataset; ``{name: result}``."""
    logger = MMLogger.get_current_instance()
    tcfg = cfg.get('transfer_cfg')
    if tcfg is None:
        raise KeyError(f'{cfg.filename} has no transfer_cfg; use '
                       'configs/benchmarks/linear/transfer_*.py.')
    specs = [_check_spec(dict(s)) for s in (datasets or tcfg.get('datasets', []))]
    if not specs:
        raise ValueError('no transfer datasets: list them in transfer_cfg.datasets or with '
                         '--datasets NAME=ROOT ...')
    init_default_scope(cfg.get('default_scope', 'mmmsf'))
    torch.manual_seed(tcfg.get('seed', 0))
    model = MODELS.build(dict(cfg.model, num_classes=None, pretrained=checkpoint))
    model.init_weights()
    dev = torch.device(device or ('cuda' if torch.cuda.is_available() else 'cpu'))
    results = {}
    for spec in specs:
        feats = {}
        classes = None
        for split in ('train', 'val', 'test'):
            if split == 'val' and not spec['val']:
                continue
            loader = Runner.build_dataloader(dict(
                batch_size=tcfg.get('batch_size', 256), num_workers=tcfg.get('num_workers', 4),
                sampler=dict(type='DefaultSampler', shuffle=False, round_up=False, seed=0),
                dataset=dict(type='ImageFolder', data_root=spec['data_root'],
                             data_prefix=spec[split], classes=classes,
                             pipeline=copy.deepcopy(tcfg['pipeline']))), seed=0)
            if classes is None:
                classes = list(loader.dataset.metainfo['classes'])
            cache = (osp.join(cache_dir, spec['name'], f'{split}.npz') if cache_dir else None)
            feats[split] = extract_features(model, loader, dev, cache_file=cache, normalize=False)
        res = transfer_linear_eval(
            feats['train'], feats['test'], feats.get('val'), lrs=tcfg.get('lrs', (0.01, 0.1)),
            weight_decays=tcfg.get('weight_decays', (0.0, )), epochs=tcfg.get('epochs', 100),
            batch_size=tcfg.get('classifier_batch_size', 256),
            val_fraction=tcfg.get('val_fraction', 0.2), metric=spec['metric'],
            seed=tcfg.get('seed', 0), device=dev)
        res['metric'] = spec['metric']
        res['num_classes'] = len(classes)
        results[spec['name']] = res
        logger.info(f"transfer {spec['name']}: {res}")
    return results


def format_transfer_table(results: Dict[str, Dict], title: str = 'checkpoint') -> str:
    """One Markdown table in the shape of the paper's Table 4 (datasets as columns + Mean)."""
    names = list(results)
    accs = [results[n][results[n]['metric']] for n in names]
    head = '| model | ' + ' | '.join(names) + ' | Mean |'
    sep = '|---|' + '---:|' * (len(names) + 1)
    mean = sum(accs) / len(accs)
    row = f'| {title} | ' + ' | '.join(f'{a:.1f}' for a in accs) + f' | {mean:.1f} |'
    detail = ['', '| dataset | metric | accuracy | val | lr | weight decay | train / test |',
              '|---|---|---:|---:|---:|---:|---:|']
    for n in names:
        r = results[n]
        detail.append(f"| {n} | {r['metric']} | {r[r['metric']]:.1f} | {r['val']:.1f} | "
                      f"{r['lr']:g} | {r['weight_decay']:g} | {r['num_train']} / {r['num_test']} |")
    return '\n'.join([head, sep, row] + detail)


def write_transfer_results(results: Dict[str, Dict], checkpoint: Optional[str],
                           config: Optional[str] = None, out: Optional[str] = None) -> str:
    """Write the per-dataset ``results`` of :func:`transfer_eval` with their mean (default
    ``<checkpoint folder>/eval/transfer_<checkpoint>.json``); returns the path."""
    summary = {n: r[r['metric']] for n, r in results.items()}
    summary['mean'] = sum(summary.values()) / len(summary)
    return write_results(out or checkpoint_results_path(checkpoint, 'transfer'), 'transfer',
                         summary, details=results, checkpoint=checkpoint,
                         config=osp.abspath(config) if config else None)
