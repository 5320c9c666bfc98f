"""mmmsf's registries: children of mmengine's root registries (scope ``mmmsf``).

Configs set ``default_scope = 'mmmsf'``; each registry imports its ``locations`` lazily, so a
tool need not import every module, and a new selector/loss/hook is one new file registered here
by its decorator (plus one config that names it).
"""
from mmengine.registry import DATA_SAMPLERS as MMENGINE_DATA_SAMPLERS
from mmengine.registry import DATASETS as MMENGINE_DATASETS
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import LOOPS as MMENGINE_LOOPS
from mmengine.registry import METRICS as MMENGINE_METRICS
from mmengine.registry import MODEL_WRAPPERS as MMENGINE_MODEL_WRAPPERS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS as MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS
from mmengine.registry import OPTIM_WRAPPERS as MMENGINE_OPTIM_WRAPPERS
from mmengine.registry import OPTIMIZERS as MMENGINE_OPTIMIZERS
from mmengine.registry import PARAM_SCHEDULERS as MMENGINE_PARAM_SCHEDULERS
from mmengine.registry import RUNNERS as MMENGINE_RUNNERS
from mmengine.registry import TRANSFORMS as MMENGINE_TRANSFORMS
from mmengine.registry import WEIGHT_INITIALIZERS as MMENGINE_WEIGHT_INITIALIZERS
from mmengine.registry import Registry

MODELS = Registry('model', parent=MMENGINE_MODELS, locations=['mmmsf.models'])
MODEL_WRAPPERS = Registry(
    'model_wrapper', parent=MMENGINE_MODEL_WRAPPERS, locations=['mmmsf.models'])
DATASETS = Registry('dataset', parent=MMENGINE_DATASETS, locations=['mmmsf.datasets'])
DATA_SAMPLERS = Registry(
    'data sampler', parent=MMENGINE_DATA_SAMPLERS, locations=['mmmsf.datasets'])
TRANSFORMS = Registry(
    'transform', parent=MMENGINE_TRANSFORMS, locations=['mmmsf.datasets.transforms'])
HOOKS = Registry('hook', parent=MMENGINE_HOOKS, locations=['mmmsf.engine.hooks'])
LOOPS = Registry('loop', parent=MMENGINE_LOOPS, locations=['mmmsf.engine.runner'])
RUNNERS = Registry('runner', parent=MMENGINE_RUNNERS, locations=['mmmsf.engine.runner'])
METRICS = Registry('metric', parent=MMENGINE_METRICS, locations=['mmmsf.evaluation'])
OPTIMIZERS = Registry('optimizer', parent=MMENGINE_OPTIMIZERS, locations=['mmmsf.engine'])
OPTIM_WRAPPERS = Registry(
    'optim_wrapper', parent=MMENGINE_OPTIM_WRAPPERS, locations=['mmmsf.engine'])
OPTIM_WRAPPER_CONSTRUCTORS = Registry(
    'optimizer wrapper constructor', parent=MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS,
    locations=['mmmsf.engine'])
PARAM_SCHEDULERS = Registry(
    'parameter scheduler', parent=MMENGINE_PARAM_SCHEDULERS, locations=['mmmsf.engine'])


class OptionalLocationRegistry(Registry):
    """A registry whose locations need an optional part of the install.

    ``mmmsf.detection`` needs mmdet and mmcv's compiled ops, which the light install leaves
    out, and importing it then raises an ImportError that says how to build them. Here that
    location is skipped on first use, so every type of the parent registries (mmengine's
    'Pretrained', 'Kaiming', ... in any ``init_cfg`` of the mmmsf scope) is still found; a type
    found nowhere raises the location's ImportError (e.g. 'mmmsf.PretrainedResNet' of a
    detection config on the light install) instead of "not in the registry".
    """

    def import_from_location(self) -> None:
        if self._imported:
            return
        try:
            super().import_from_location()
        except ImportError as e:
            self._imported = True
            self._location_error = e

    def get(self, key: str):
        found = super().get(key)
        error = getattr(self, '_location_error', None)
        if found is None and error is not None:
            raise ImportError(f'{self.name} {key!r}: {error}')
        return found


# Initialisers of downstream models from mmmsf checkpoints (detection transfer: configs name
# them 'mmmsf.PretrainedResNet' in an mmdet ``init_cfg``).
WEIGHT_INITIALIZERS = OptionalLocationRegistry(
    'weight initializer', parent=MMENGINE_WEIGHT_INITIALIZERS, locations=['mmmsf.detection'])
# Neighbour selectors (MSF's top-k and CMSF's constrained variants) are registered in MODELS:
# they are built from the algorithm's ``selector=dict(type=...)``.
