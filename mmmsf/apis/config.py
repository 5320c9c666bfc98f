"""Loading and checking configs for mmmsf's tools.

Everything that can be checked before training starts is checked here: misspelt top-level keys,
unknown keys of every built part (model and its sub-modules, hooks, loops, samplers, datasets,
transforms, optimiser, schedulers, data loaders), each with the closest valid name, and
``--cfg-options`` items that are not ``KEY=VALUE``. ``custom_imports`` (mmengine's standard
``dict(imports=[...], allow_failed_imports=False)``) is imported first, so parts registered in
the user's own modules are known to the checks and to the Runner.
"""
import difflib
import inspect
import os.path as osp
from typing import Dict, Iterator, List, Optional, Set, Tuple

from mmengine.config import Config
from mmengine.config import DictAction as _MMEngineDictAction

from mmmsf import registry as mmmsf_registry

# Top-level keys that mmengine's Runner.from_cfg or mmmsf's tools read. Anything else is a
# typo that mmengine would silently ignore.
KNOWN_TOP_LEVEL_KEYS = {
    'model', 'work_dir', 'train_dataloader', 'val_dataloader', 'test_dataloader', 'train_cfg',
    'val_cfg', 'test_cfg', 'auto_scale_lr', 'optim_wrapper', 'param_scheduler', 'val_evaluator',
    'test_evaluator', 'default_hooks', 'custom_hooks', 'data_preprocessor', 'load_from',
    'resume', 'launcher', 'env_cfg', 'log_processor', 'log_level', 'visualizer',
    'default_scope', 'randomness', 'experiment_name', 'cfg', 'model_wrapper_cfg', 'strategy',
    'compile', 'sync_bn', 'find_unused_parameters', 'vis_backends', 'custom_imports',
    'activation_checkpointing', 'efficient_conv_bn_eval', 'runner_type',
    # mmmsf
    'knn_train_dataloader', 'knn_test_dataloader', 'knn_cfg', 'linear_cfg', 'transfer_cfg',
    'data_root',
    'max_epochs', 'max_iters', 'analysis_cfg',
}
# Variables of pipeline building blocks that configs define for inheritance.
PIPELINE_VARIABLE_SUFFIXES = ('_pipeline', '_pipelines')
# An unknown top-level name this similar to a known key (difflib's ratio) is taken for a typo
# of it: 'trian_dataloader' 0.94, 'env_cgf' 0.86, 'modle' 0.8; helper variables in mmengine's
# config style stay below it ('img_size' 0.56, 'dataset_type' 0.48, 'crop_size' 0.62).
NEAR_MISS_CUTOFF = 0.8
# mmcv 1.x keys that mmengine ignores: a config that sets them would train with something else.
LEGACY_KEYS = {
    'optimizer': 'optim_wrapper.optimizer', 'optimizer_config': 'optim_wrapper',
    'lr_config': 'param_scheduler', 'momentum_config': 'param_scheduler',
    'runner': 'train_cfg (by_epoch, max_epochs)', 'total_epochs': 'train_cfg.max_epochs',
    'checkpoint_config': 'default_hooks.checkpoint', 'log_config': 'default_hooks.logger',
    'evaluation': 'train_cfg.val_interval and val_evaluator', 'workflow': 'train_cfg',
    'dist_params': 'env_cfg.dist_cfg', 'data': 'train_dataloader / val_dataloader',
}


def check_config_keys(cfg: Config, extra_known: Optional[List[str]] = None) -> None:
    """Raise ``KeyError`` for a top-level key that is a near-miss of a known key (a typo, with
    the key it resembles) or an mmcv 1.x key that mmengine ignores (with its mmengine place).

    Other names are the config's own variables -- mmengine's config style, e.g. ``img_size =
    16``, ``dataset_type = 'ImageFolder'``, ``weak = [...]`` used further down -- and are
    accepted, as mmengine accepts them.
    """
    known = KNOWN_TOP_LEVEL_KEYS | set(extra_known or [])
    hints = []
    for k in cfg.keys():
        if k in known or k.endswith(PIPELINE_VARIABLE_SUFFIXES) or k.startswith('_'):
            continue
        if k in LEGACY_KEYS:
            hints.append(f'{k!r} (an mmcv 1.x key that mmengine ignores: set '
                         f'{LEGACY_KEYS[k]} instead)')
            continue
        close = difflib.get_close_matches(k, sorted(known), n=1, cutoff=NEAR_MISS_CUTOFF)
        if close:
            hints.append(f'{k!r} (did you mean {close[0]!r}?)')
    if hints:
        raise KeyError(f'config key(s) {", ".join(hints)} in {cfg.filename}: fix the spelling; '
                       'a variable of your own needs a name that is not this close to a key '
                       'the runner reads.')


class DictAction(_MMEngineDictAction):
    """mmengine's ``--cfg-options`` action; an item without ``=`` is one line of error."""

    def __call__(self, parser, namespace, values, option_string=None):
        for kv in values or []:
            if '=' not in kv or not kv.split('=', 1)[0]:
                parser.exit(2, f'{parser.prog}: error: {option_string} item {kv!r} is not '
                               'KEY=VALUE; write e.g. model.topk=5\n')
        super().__call__(parser, namespace, values, option_string)


def import_custom_modules(cfg: Config) -> None:
    """Import the modules of ``cfg.custom_imports`` (also when set by ``--cfg-options``)."""
    custom = cfg.get('custom_imports')
    if not custom:
        return
    if not isinstance(custom, dict) or 'imports' not in custom:
        raise KeyError(f"custom_imports in {cfg.filename} must be dict(imports=['module', ...], "
                       'allow_failed_imports=False).')
    from mmengine.utils import import_modules_from_strings
    imports = custom['imports']
    try:
        import_modules_from_strings(imports=imports,
                                    allow_failed_imports=custom.get('allow_failed_imports',
                                                                    False))
    except ImportError as e:
        raise ImportError(f'custom_imports of {cfg.filename}: cannot import {imports!r} ({e}); '
                          'the module must be importable: put its folder on PYTHONPATH (or run '
                          'from that folder).') from None


def load_config(path: str, cfg_options: Optional[Dict] = None,
                data_root: Optional[str] = None) -> Config:
    """Read a config, apply ``--cfg-options`` and an optional data-root override, import
    ``custom_imports``, check top-level and nested keys."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'config {path!r} does not exist.')
    cfg = Config.fromfile(path, import_custom_modules=False)  # imported below, after options
    if cfg_options:
        check_option_types(cfg, cfg_options)
        cfg.merge_from_dict(cfg_options)
    if data_root:
        set_data_root(cfg, data_root)
    import_custom_modules(cfg)
    check_config_keys(cfg)
    check_nested_keys(cfg)
    return cfg


# ---- option types -------------------------------------------------------------------------
_MISSING = object()


def _config_value(cfg: Config, key: str):
    """The value at dotted ``key`` (list items by index), or ``_MISSING``."""
    node = {k: cfg[k] for k in cfg.keys()} if isinstance(cfg, Config) else cfg
    for part in key.split('.'):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, (list, tuple)) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return _MISSING
    return node


def _expected_kind(old) -> Optional[Tuple[tuple, str]]:
    """(accepted types, their name) for a value replacing ``old``; None: anything goes."""
    if isinstance(old, bool):
        return (bool, ), 'True or False'
    if isinstance(old, int):
        return (int, ), 'whole number'
    if isinstance(old, float):
        return (int, float), 'number'
    if isinstance(old, (list, tuple)):
        return (list, tuple), 'list, e.g. [1,20]'
    if isinstance(old, dict):
        return (dict, ), "dict, e.g. dict(type='...')"
    return None


def check_option_types(cfg: Config, cfg_options: Dict) -> None:
    """``--cfg-options KEY=VALUE`` must keep the kind of the value it replaces (a number stays
    a number, a boolean a boolean, a list a list; ``None`` is always allowed): ``topk=five``,
    ``topk=[5``, ``topk=2.5`` or ``sharded=no`` is one error naming the option, not a
    ``TypeError`` after the model is built (or a string that counts as true)."""
    problems = []
    for key, new in cfg_options.items():
        old = _config_value(cfg, key)
        kind = None if old is _MISSING or old is None or new is None else _expected_kind(old)
        if kind is None:
            continue
        types, name = kind
        if isinstance(new, bool) and bool not in types or not isinstance(new, types):
            problems.append(f'{key}={new!r} (the config has {old!r}: give a {name})')
    if problems:
        raise ValueError(f'--cfg-options of another kind than the value they replace in '
                         f'{cfg.filename}: ' + '; '.join(problems) + '.')


# ---- nested keys --------------------------------------------------------------------------
# Keys the Runner's build_dataloader takes besides torch DataLoader's own arguments.
_DATALOADER_EXTRA = {'dataset', 'sampler', 'batch_sampler', 'collate_fn', 'worker_init_fn',
                     'num_batch_per_epoch', 'disable_subprocess_warning'}
# Keys mmengine's builders take off a part's config before they call the class (so they are
# not arguments of it): a hook's priority (Runner.register_hook), a scheduler's epoch -> iter
# conversion (build_scheduler_from_cfg), the optimiser-wrapper constructor and its paramwise
# options (build_optim_wrapper).
_BUILDER_KEYS = {'HOOKS': {'priority'}, 'PARAM_SCHEDULERS': {'convert_to_iter_based'},
                 'OPTIM_WRAPPERS': {'constructor', 'paramwise_cfg'}}


def accepted_keys(cls) -> Optional[Set[str]]:
    """Keyword arguments ``cls(...)`` accepts, following ``**kwargs`` up the base classes;
    None where that cannot be told (a ``**kwargs`` that goes elsewhere, a C signature)."""
    names: Set[str] = set()
    if not inspect.isclass(cls):
        return None
    for klass in cls.__mro__:
        if klass is object:
            return names
        init = klass.__dict__.get('__init__')
        if init is None:
            continue
        try:
            params = inspect.signature(init).parameters
        except (TypeError, ValueError):
            return None
        names |= {n for n, p in params.items()
                  if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and n != 'self'}
        if not any(p.kind == p.VAR_KEYWORD for p in params.values()):
            return names
    return None


def _typed(node, where: str, registry) -> Iterator[Tuple[str, dict, object]]:
    """(where, config dict, registry) of ``node`` if it is a config of a registered type."""
    if isinstance(node, dict) and isinstance(node.get('type'), str):
        yield where, node, registry


def _model_parts(node, where: str, models) -> Iterator[Tuple[str, dict, object]]:
    yield from _typed(node, where, models)
    if isinstance(node, dict):
        for k, v in node.items():
            if k.endswith('_cfg') or k == 'type':  # init_cfg, norm_cfg, ...: other builders
                continue
            if isinstance(v, dict) and isinstance(v.get('type'), str):
                yield from _model_parts(v, f'{where}.{k}', models)


def _pipeline_parts(pipeline, where: str, transforms) -> Iterator[Tuple[str, dict, object]]:
    if not isinstance(pipeline, (list, tuple)):
        return
    for i, t in enumerate(pipeline):
        if isinstance(t, (list, tuple)):
            yield from _pipeline_parts(t, f'{where}[{i}]', transforms)
        elif isinstance(t, dict):
            yield from _typed(t, f'{where}[{i}]', transforms)
            for k, v in t.items():
                if isinstance(v, (list, tuple)):
                    yield from _pipeline_parts(v, f'{where}[{i}].{k}', transforms)


def _dataset_parts(ds, where: str, r) -> Iterator[Tuple[str, dict, object]]:
    if not isinstance(ds, dict):
        return
    yield from _typed(ds, where, r.DATASETS)
    yield from _pipeline_parts(ds.get('pipeline'), f'{where}.pipeline', r.TRANSFORMS)
    for k in ('dataset', 'datasets'):  # dataset wrappers
        sub = ds.get(k)
        for j, d in enumerate(sub if isinstance(sub, (list, tuple)) else [sub]):
            yield from _dataset_parts(d, f'{where}.{k}' + (f'[{j}]' if k == 'datasets' else ''),
                                      r)


def _config_parts(cfg: Config) -> Iterator[Tuple[str, dict, object]]:
    r = mmmsf_registry
    yield from _model_parts(cfg.get('model'), 'model', r.MODELS)
    hooks = cfg.get('default_hooks') or {}
    if isinstance(hooks, dict):
        for name, h in hooks.items():
            yield from _typed(h, f'default_hooks.{name}', r.HOOKS)
    for i, h in enumerate(cfg.get('custom_hooks') or []):
        yield from _typed(h, f'custom_hooks[{i}]', r.HOOKS)
    for key in ('train_cfg', 'val_cfg', 'test_cfg'):
        yield from _typed(cfg.get(key), key, r.LOOPS)
    ow = cfg.get('optim_wrapper')
    if isinstance(ow, dict):
        if ow.get('constructor', 'DefaultOptimWrapperConstructor') == \
                'DefaultOptimWrapperConstructor':  # another constructor may read other keys
            yield from _typed(ow, 'optim_wrapper', r.OPTIM_WRAPPERS)
        yield from _typed(ow.get('optimizer'), 'optim_wrapper.optimizer', r.OPTIMIZERS)
    sched = cfg.get('param_scheduler')
    for i, s in enumerate(sched if isinstance(sched, (list, tuple)) else [sched]):
        yield from _typed(s, f'param_scheduler[{i}]' if isinstance(sched, (list, tuple))
                          else 'param_scheduler', r.PARAM_SCHEDULERS)
    for key in cfg.keys():
        if key.endswith('_dataloader') and isinstance(cfg[key], dict):
            yield from _typed(cfg[key].get('sampler'), f'{key}.sampler', r.DATA_SAMPLERS)
            yield from _dataset_parts(cfg[key].get('dataset'), f'{key}.dataset', r)
    for key in ('val_evaluator', 'test_evaluator'):
        ev = cfg.get(key)
        for i, m in enumerate(ev if isinstance(ev, (list, tuple)) else [ev]):
            yield from _typed(m, f'{key}[{i}]' if isinstance(ev, (list, tuple)) else key,
                              r.METRICS)
    from mmengine.registry import LOG_PROCESSORS, VISBACKENDS, VISUALIZERS
    for key, registry, default in (('visualizer', VISUALIZERS, 'Visualizer'),
                                   ('log_processor', LOG_PROCESSORS, 'LogProcessor')):
        node = cfg.get(key)
        if isinstance(node, dict):
            yield from _typed(dict(node, type=node.get('type', default)), key, registry)
    vis = cfg.get('visualizer')
    backends = vis.get('vis_backends') if isinstance(vis, dict) else None
    for i, b in enumerate(backends if isinstance(backends, (list, tuple)) else []):
        yield from _typed(b, f'visualizer.vis_backends[{i}]', VISBACKENDS)


def _unknown(keys, known: Set[str], where: str, what: str) -> Optional[str]:
    bad = [k for k in keys if k not in known]
    if not bad:
        return None
    hints = []
    for k in bad:
        close = difflib.get_close_matches(k, sorted(known), n=1)
        hints.append(f'{where}.{k}' + (f' (did you mean {where}.{close[0]}?)' if close else ''))
    return f'{", ".join(hints)}: not an argument of {what}'


# Settings read as plain dicts (no type to look up): the keys their readers take.
PLAIN_SETTINGS = {
    'randomness': ({'seed', 'diff_rank_seed', 'deterministic'}, "mmengine's Runner.set_randomness"),
    'env_cfg': ({'cudnn_benchmark', 'mp_cfg', 'dist_cfg', 'resource_limit'},
                "mmengine's Runner.setup_env"),
    'env_cfg.mp_cfg': ({'mp_start_method', 'opencv_num_threads'}, "mmengine's Runner.setup_env"),
    'knn_cfg': ({'ks', 'weighted', 'temperature'}, 'the kNN evaluation (tools/knn_eval.py)'),
}


def bool_arguments(cls) -> Set[str]:
    """Arguments of ``cls(...)`` (up the ``**kwargs`` chain) whose default is True or False."""
    names: Set[str] = set()
    for klass in getattr(cls, '__mro__', ()):
        init = klass.__dict__.get('__init__')
        if klass is object or init is None:
            continue
        try:
            params = inspect.signature(init).parameters
        except (TypeError, ValueError):
            break
        names |= {n for n, p in params.items() if isinstance(p.default, bool)}
        if not any(p.kind == p.VAR_KEYWORD for p in params.values()):
            break
    return names


def check_nested_keys(cfg: Config) -> None:
    """Raise ``KeyError`` naming every key that the part it configures does not take, with
    the closest valid name, and every non-boolean value of a True/False argument -- before
    anything is built or trained."""
    import torch.utils.data
    r = mmmsf_registry
    builder_keys = {id(getattr(r, name)): keys for name, keys in _BUILDER_KEYS.items()}
    problems: List[str] = []
    for where, node, registry in _config_parts(cfg):
        try:
            cls = registry.get(node['type'])
        except Exception:  # noqa: BLE001 - an unknown type is the builder's error to give
            cls = None
        if cls is None:
            continue
        known = accepted_keys(cls)
        if known is None:
            continue
        known = known | builder_keys.get(id(registry), set())
        msg = _unknown([k for k in node if k != 'type' and not k.startswith('_')], known,
                       where, f"{node['type']}")
        if msg:
            problems.append(msg)
        for k in sorted(bool_arguments(cls) & set(node)):
            if not isinstance(node[k], bool):  # a string such as 'no' would count as true
                problems.append(f"{where}.{k}={node[k]!r}: {node['type']} takes True or False")
    for where, (known, what) in PLAIN_SETTINGS.items():
        node = _config_value(cfg, where)
        if isinstance(node, dict):
            msg = _unknown(list(node), known, where, what)
            if msg:
                problems.append(msg)
    known_dl = (set(inspect.signature(torch.utils.data.DataLoader.__init__).parameters)
                - {'self'}) | _DATALOADER_EXTRA
    for key in cfg.keys():
        if key.endswith('_dataloader') and isinstance(cfg[key], dict):
            msg = _unknown(list(cfg[key]), known_dl, key, 'the data loader')
            if msg:
                problems.append(msg)
    if problems:
        raise KeyError(f'config error(s) in {cfg.filename}: ' + '; '.join(problems)
                       + '. Fix the spelling or the value, or remove the key.')


def set_data_root(cfg: Config, data_root: str) -> None:
    """Point every dataloader's dataset (and nested datasets) at ``data_root``."""
    def visit(node):
        if isinstance(node, dict):
            if 'data_root' in node:
                node['data_root'] = data_root
            for v in node.values():
                visit(v)
        elif isinstance(node, list):
            for v in node:
                visit(v)
    for key in list(cfg.keys()):
        if key.endswith('dataloader'):
            visit(cfg[key])
    cfg.data_root = data_root


def iter_hooks(cfg: Config) -> Iterator[dict]:
    """Every hook config of ``cfg``: the keyed ``default_hooks`` (where the configs put the
    method's hooks) and then ``custom_hooks``; edit them in place to change a run."""
    for hook in (cfg.get('default_hooks') or {}).values():
        if hook is not None:
            yield hook
    yield from cfg.get('custom_hooks') or []
