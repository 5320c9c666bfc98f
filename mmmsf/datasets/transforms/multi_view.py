"""Several augmented views of one image, each from its own pipeline (target / online views).

``MultiView(transforms=[weak, strong])`` gives MSF's "w/s" (weak target, strong online);
``[strong, strong]`` is "s/s" and ``[weak, weak]`` "w/w" -- config-only choices.
"""
import copy
from typing import List, Sequence, Union

from mmcv.transforms import BaseTransform, Compose

from mmmsf.registry import TRANSFORMS


@TRANSFORMS.register_module()
class MultiView(BaseTransform):
    """Apply ``transforms[i]`` ``num_views[i]`` times to copies of the loaded image.

    Args:
        transforms: list of pipelines (each a list of transform configs).
        num_views: views per pipeline (default one each).
    """

    def __init__(self, transforms: Sequence[Sequence[dict]],
                 num_views: Union[int, Sequence[int]] = 1):
        if isinstance(num_views, int):
            num_views = [num_views] * len(transforms)
        if len(num_views) != len(transforms):
            raise ValueError(f'MultiView: {len(transforms)} pipelines but num_views={num_views}.')
        self.pipelines = [Compose(list(t)) for t in transforms]
        self.num_views = list(num_views)

    def transform(self, results: dict) -> dict:
        views: List = []
        for pipeline, n in zip(self.pipelines, self.num_views):
            for _ in range(n):
                out = pipeline(copy.deepcopy(results))
                views.append(out['img'])
        results['img'] = views
        return results

    def __repr__(self) -> str:
        return f'{type(self).__name__}(num_views={self.num_views}, pipelines={self.pipelines})'
