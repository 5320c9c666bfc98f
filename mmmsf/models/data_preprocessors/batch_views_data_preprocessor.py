"""The views of MSF's w/s pipeline made on the whole batch at once, inside the model.

The per-image pipeline (``MultiView`` of ``RandomResizedCrop``, ``ColorJitter``, ... in the
loader workers) costs about as much CPU per image as a small model's training step on it: on a
2-core machine the loader then halves the training speed. Here the loader only decodes (and
packs) each image once, and the views are drawn for the whole batch with a few tensor ops
(on the GPU when the model is there): random resized crop + flip as one ``grid_sample``, colour
jitter (brightness, contrast, saturation, hue), random grayscale.

Every random number of a sample comes from its own generator, seeded by the sample's
augmentation seed (``RecordAugSeed`` in the pipeline, under the per-sample seeding of
:class:`~mmmsf.datasets.ResumableSampler`): a sample's views are the same for any batch, number
of processes or workers, and in a resumed run.

Differences from the per-image transforms (same parameters, same ranges): the crop box is
clipped to the image instead of being drawn again; bilinear resampling without antialiasing;
the jitter's four operations run in a fixed order (brightness, contrast, saturation, hue)
instead of a random one; hue is a rotation of the chroma plane in YIQ space instead of a shift
in HSV.
"""
import math
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

from mmmsf.registry import MODELS

from .multi_view_data_preprocessor import MultiViewDataPreprocessor

# Random numbers drawn per sample and view: crop (4), flip, jitter on/off + 4 factors, gray.
NUM_DRAWS = 11
_RGB_TO_YIQ = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322],
                            [0.211, -0.523, 0.312]])
_GRAY = torch.tensor([0.299, 0.587, 0.114])


def check_view(view: Dict) -> Dict:
    """A view's settings with defaults filled in; an unknown key or a bad range is an error."""
    known = dict(size=32, scale=(0.2, 1.0), ratio=(3 / 4, 4 / 3), flip_prob=0.5,
                 jitter_prob=0.0, brightness=0.0, contrast=0.0, saturation=0.0, hue=0.0,
                 gray_prob=0.0)
    unknown = sorted(set(view) - set(known))
    if unknown:
        raise KeyError(f'BatchViewsDataPreprocessor view has unknown keys {unknown}; known: '
                       f'{sorted(known)}.')
    out = dict(known, **view)
    lo, hi = out['scale']
    if not 0 < lo <= hi <= 1:
        raise ValueError(f'view scale={out["scale"]} must satisfy 0 < min <= max <= 1.')
    if int(out['size']) < 1:
        raise ValueError(f'view size={out["size"]} must be a positive number of pixels.')
    if not 0 <= out['hue'] <= 0.5:
        raise ValueError(f'view hue={out["hue"]} must lie in [0, 0.5].')
    return out


def resized_crop(x: torch.Tensor, u: torch.Tensor, size: int, scale: Tuple[float, float],
                 ratio: Tuple[float, float], flip_prob: float) -> torch.Tensor:
    """Random resized crop (area fraction in ``scale``, aspect in ``ratio``) and horizontal flip
    of every image, resampled bilinearly to ``size`` x ``size``; ``u``: (B, 5) uniforms."""
    s = scale[0] + (scale[1] - scale[0]) * u[:, 0]
    log_r = math.log(ratio[0]) + (math.log(ratio[1]) - math.log(ratio[0])) * u[:, 1]
    r = log_r.exp()
    w = (s * r).sqrt().clamp(max=1.0)  # box size as a fraction of the image side
    h = (s / r).sqrt().clamp(max=1.0)
    cx = (2 * u[:, 2] - 1) * (1 - w)
    cy = (2 * u[:, 3] - 1) * (1 - h)
    flip = torch.where(u[:, 4] < flip_prob, -1.0, 1.0)
    theta = torch.zeros(x.shape[0], 2, 3, dtype=x.dtype, device=x.device)
    theta[:, 0, 0], theta[:, 0, 2] = w * flip, cx
    theta[:, 1, 1], theta[:, 1, 2] = h, cy
    grid = F.affine_grid(theta, [x.shape[0], x.shape[1], size, size], align_corners=False)
    return F.grid_sample(x, grid, mode='bilinear', padding_mode='reflection',
                         align_corners=False)


def _gray(x: torch.Tensor) -> torch.Tensor:
    return torch.einsum('c,bchw->bhw', _GRAY.to(x), x).unsqueeze(1)


def color_jitter(x: torch.Tensor, u: torch.Tensor, brightness: float, contrast: float,
                 saturation: float, hue: float) -> torch.Tensor:
    """Brightness, contrast, saturation and hue jitter of RGB images in [0, 1]; ``u``: (B, 4)
    uniforms, mapped to factors in ``[1 - v, 1 + v]`` (hue: a rotation by ``±hue`` turns)."""
    def factor(col: int, v: float) -> torch.Tensor:
        return (1 + v * (2 * u[:, col] - 1)).view(-1, 1, 1, 1)

    x = (x * factor(0, brightness)).clamp(0, 1)
    mean = _gray(x).mean(dim=(1, 2, 3), keepdim=True)
    x = ((x - mean) * factor(1, contrast) + mean).clamp(0, 1)
    g = _gray(x)
    x = ((x - g) * factor(2, saturation) + g).clamp(0, 1)
    if hue > 0:
        m = _RGB_TO_YIQ.to(x)
        yiq = torch.einsum('ij,bjhw->bihw', m, x)
        angle = (hue * (2 * u[:, 3] - 1) * 2 * math.pi).view(-1, 1, 1)
        cos, sin = angle.cos(), angle.sin()
        i, q = yiq[:, 1], yiq[:, 2]
        yiq = torch.stack([yiq[:, 0], i * cos - q * sin, i * sin + q * cos], dim=1)
        x = torch.einsum('ij,bjhw->bihw', torch.linalg.inv(m), yiq).clamp(0, 1)
    return x


def make_view(x: torch.Tensor, u: torch.Tensor, view: Dict) -> torch.Tensor:
    """One view of RGB images ``x`` in [0, 1] from per-sample uniforms ``u`` (B, NUM_DRAWS)."""
    y = resized_crop(x, u[:, :5], int(view['size']), tuple(view['scale']),
                     tuple(view['ratio']), view['flip_prob'])
    if view['jitter_prob'] > 0:
        on = (u[:, 5] < view['jitter_prob']).view(-1, 1, 1, 1)
        jit = color_jitter(y, u[:, 6:10], view['brightness'], view['contrast'],
                           view['saturation'], view['hue'])
        y = torch.where(on, jit, y)
    if view['gray_prob'] > 0:
        gray = (u[:, 10] < view['gray_prob']).view(-1, 1, 1, 1)
        y = torch.where(gray, _gray(y).expand_as(y), y)
    return y


def sample_uniforms(seeds: Sequence[int], num_views: int) -> torch.Tensor:
    """(num_views, B, NUM_DRAWS) uniforms; sample ``i``'s come from its own seed only."""
    out = torch.empty(len(seeds), num_views * NUM_DRAWS)
    gen = torch.Generator()
    for i, seed in enumerate(seeds):
        gen.manual_seed(int(seed))
        out[i] = torch.rand(num_views * NUM_DRAWS, generator=gen)
    return out.view(len(seeds), num_views, NUM_DRAWS).transpose(0, 1)


@MODELS.register_module()
class BatchViewsDataPreprocessor(MultiViewDataPreprocessor):
    """Training: the ``views`` of each decoded image, made batch-wise; evaluation: as
    :class:`MultiViewDataPreprocessor` (normalisation only).

    Args:
        views: one dict per view, in the model's view order (MSF: target first), with keys
            ``size``, ``scale``, ``ratio``, ``flip_prob``, ``jitter_prob``, ``brightness``,
            ``contrast``, ``saturation``, ``hue``, ``gray_prob`` (the per-image transforms'
            meanings; missing keys: no such augmentation).
        size: if given, the output size of every view (overrides the views' ``size``), so a
            config changes the resolution without restating the views.
        mean, std, bgr_to_rgb, channels_last: as :class:`MultiViewDataPreprocessor`.

    The training batch must be one view per image, all of one size, each data sample carrying
    ``aug_seed`` (train pipeline ``[LoadImageFromFile, RecordAugSeed, PackInputs(meta_keys=
    (..., 'aug_seed'))]``).
    """

    def __init__(self, views: Sequence[Dict], size: Optional[int] = None,
                 mean: Sequence[float] = (123.675, 116.28, 103.53),
                 std: Sequence[float] = (58.395, 57.12, 57.375), bgr_to_rgb: bool = True,
                 channels_last: bool = False, non_blocking: bool = True):
        super().__init__(mean=mean, std=std, bgr_to_rgb=bgr_to_rgb, channels_last=channels_last,
                         non_blocking=non_blocking)
        if not views:
            raise ValueError('BatchViewsDataPreprocessor needs at least one view.')
        self.views = [check_view(dict(v, size=size) if size else dict(v)) for v in views]

    def forward(self, data: dict, training: bool = False) -> dict:
        if not training:
            return super().forward(data, training)
        data = self.cast_data(data)
        inputs, samples = data['inputs'], data.get('data_samples')
        if isinstance(inputs, (list, tuple)) and inputs and not isinstance(inputs[0],
                                                                            torch.Tensor):
            raise ValueError('BatchViewsDataPreprocessor makes the views itself: the train '
                             'pipeline must yield one decoded image per sample (no MultiView).')
        x = inputs if isinstance(inputs, torch.Tensor) else torch.stack(list(inputs))
        seeds = self._seeds(samples, x.shape[0])
        if self._channel_conversion:
            x = x[:, [2, 1, 0], ...]
        x = x.float() / 255.0
        u = sample_uniforms(seeds, len(self.views)).to(x.device)
        out: List[torch.Tensor] = []
        for view, uv in zip(self.views, u):
            out.append(self.normalize(make_view(x, uv, view) * 255.0))
        return dict(inputs=out, data_samples=samples)

    @staticmethod
    def _seeds(samples: Optional[list], batch: int) -> List[int]:
        seeds = [s.metainfo.get('aug_seed') for s in samples] if samples else [None] * batch
        if any(s is None for s in seeds):
            raise KeyError("BatchViewsDataPreprocessor: a training sample has no 'aug_seed'. Put "
                           "RecordAugSeed before PackInputs and add 'aug_seed' to PackInputs' "
                           'meta_keys in the train pipeline.')
        return seeds
