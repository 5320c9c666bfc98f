"""Read every image of a config's datasets once, before a long run: an unreadable image is
otherwise found only when the data loader first reaches it (hours into an ImageNet epoch)."""
import copy
import multiprocessing as mp
from typing import Dict, List, Optional, Tuple

from mmengine.config import Config
from mmengine.registry import init_default_scope

from mmmsf.datasets.transforms.loading import LoadImageFromFile
from mmmsf.registry import DATASETS


def config_image_paths(cfg: Config) -> Dict[str, List[str]]:
    """``{dataloader key: image paths}`` of every ``*_dataloader`` dataset of ``cfg`` that lists
    images (the datasets are built, so a missing folder or list file is reported as usual)."""
    init_default_scope(cfg.get('default_scope', 'mmmsf'))
    out = {}
    for key in sorted(cfg.keys()):
        loader = cfg.get(key)
        if not (key.endswith('_dataloader') and isinstance(loader, dict)
                and isinstance(loader.get('dataset'), dict)):
            continue
        dataset = DATASETS.build(copy.deepcopy(loader['dataset']))
        if hasattr(dataset, 'full_init'):
            dataset.full_init()
        if not hasattr(dataset, 'get_data_info'):
            continue
        paths = [dataset.get_data_info(i).get('img_path') for i in range(len(dataset))]
        out[key] = [p for p in paths if p]
    return out


def _read(path: str) -> Optional[str]:
    try:
        LoadImageFromFile().transform(dict(img_path=path))
    except Exception as e:  # noqa: BLE001 - every failure is reported
        return str(e)
    return None


def check_images(cfg: Config, workers: int = 1) -> Tuple[int, List[Tuple[str, str]]]:
    """(number of distinct images read, [(path, error), ...]) over all the config's datasets,
    each image decoded exactly as training decodes it."""
    paths = sorted({p for ps in config_image_paths(cfg).values() for p in ps})
    if workers > 1:
        with mp.get_context('fork').Pool(workers) as pool:
            errors = pool.map(_read, paths, chunksize=256)
    else:
        errors = [_read(p) for p in paths]
    return len(paths), [(p, e) for p, e in zip(paths, errors) if e is not None]
