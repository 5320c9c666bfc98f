"""ResNet-18/34/50/101 with torchvision's parameter names.

Names match ``torchvision.models.resnet*`` (``conv1``, ``bn1``, ``layer{1-4}.{i}.conv{1-3}``,
``downsample.{0,1}``), so torchvision checkpoints load unchanged and an extracted backbone loads
into mmdet's ``ResNet`` (same naming) and the C4 ``ResLayer`` shared head (``layer4``).

``stem='small'`` replaces the 7x7/stride-2 conv + max-pool by a 3x3/stride-1 conv without
max-pool, the usual choice for 32-96 px images. ``base_channels`` (default 64) narrows the
network for tiny tests and CPU demos without changing any parameter name.
"""
from typing import List, Optional, Sequence, Tuple, Type, Union

import torch
import torch.nn as nn
from mmengine.model import BaseModule

from mmmsf.registry import MODELS


def _norm(norm_cfg: dict, num_features: int) -> nn.Module:
    norm_type = norm_cfg.get('type', 'BN')
    if norm_type in ('BN', 'BN2d'):
        return nn.BatchNorm2d(num_features, momentum=norm_cfg.get('momentum', 0.1),
                              eps=norm_cfg.get('eps', 1e-5))
    if norm_type == 'SyncBN':
        return nn.SyncBatchNorm(num_features, momentum=norm_cfg.get('momentum', 0.1),
                                eps=norm_cfg.get('eps', 1e-5))
    if norm_type == 'GN':
        return nn.GroupNorm(norm_cfg['num_groups'], num_features)
    if norm_type in ('Identity', None):
        return nn.Identity()
    raise KeyError(f"norm_cfg.type={norm_type!r} is not one of 'BN', 'SyncBN', 'GN', "
                   "'Identity'; fix the backbone's norm_cfg in the config.")


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1,
                 downsample: Optional[nn.Module] = None, norm_cfg: dict = dict(type='BN')):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = _norm(norm_cfg, planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = _norm(norm_cfg, planes)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """torchvision's ResNet v1.5 bottleneck (stride on the 3x3 conv)."""
    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1,
                 downsample: Optional[nn.Module] = None, norm_cfg: dict = dict(type='BN')):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = _norm(norm_cfg, planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = _norm(norm_cfg, planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = _norm(norm_cfg, planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


@MODELS.register_module()
class ResNet(BaseModule):
    """ResNet backbone returning the pooled feature vector ``(N, C)`` (or stage maps).

    Args:
        depth: 18, 34, 50 or 101.
        stem: ``'imagenet'`` (7x7 stride-2 conv + max-pool) or ``'small'`` (3x3 stride-1, no pool).
        base_channels: width of the first stage (64 in the paper).
        out_indices: stages whose maps are returned when ``pool=False``.
        pool: return the global-average-pooled last stage (the 2048-d feature for R50).
        zero_init_residual: zero the last BN of each block (off in MSF's reference code).
        norm_cfg: ``dict(type='BN'|'SyncBN'|'GN')``.
    """

    arch_settings = {
        18: (BasicBlock, (2, 2, 2, 2)),
        34: (BasicBlock, (3, 4, 6, 3)),
        50: (Bottleneck, (3, 4, 6, 3)),
        101: (Bottleneck, (3, 4, 23, 3)),
    }

    def __init__(self, depth: int = 50, stem: str = 'imagenet', base_channels: int = 64,
                 in_channels: int = 3, out_indices: Sequence[int] = (3, ), pool: bool = True,
                 zero_init_residual: bool = False, norm_cfg: dict = dict(type='BN'),
                 frozen_stages: int = -1, norm_eval: bool = False,
                 init_cfg: Optional[Union[dict, List[dict]]] = None):
        super().__init__(init_cfg=init_cfg)
        if depth not in self.arch_settings:
            raise KeyError(f'ResNet depth={depth} is not supported; use one of '
                           f'{sorted(self.arch_settings)}.')
        if stem not in ('imagenet', 'small'):
            raise KeyError(f"ResNet stem={stem!r}: use 'imagenet' or 'small'.")
        block, layers = self.arch_settings[depth]
        self.depth, self.stem, self.pool = depth, stem, pool
        self.out_indices = tuple(out_indices)
        self.frozen_stages, self.norm_eval = frozen_stages, norm_eval
        self.inplanes = base_channels
        if stem == 'imagenet':
            self.conv1 = nn.Conv2d(in_channels, base_channels, 7, 2, 3, bias=False)
            self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        else:
            self.conv1 = nn.Conv2d(in_channels, base_channels, 3, 1, 1, bias=False)
            self.maxpool = nn.Identity()
        self.bn1 = _norm(norm_cfg, base_channels)
        self.relu = nn.ReLU(inplace=True)
        for i, n in enumerate(layers):
            planes = base_channels * 2**i
            setattr(self, f'layer{i + 1}',
                    self._make_layer(block, planes, n, 1 if i == 0 else 2, norm_cfg))
        self.feat_dim = base_channels * 8 * block.expansion
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.zero_init_residual = zero_init_residual
        self._freeze_stages()

    def _make_layer(self, block: Type[nn.Module], planes: int, blocks: int, stride: int,
                    norm_cfg: dict) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes * block.expansion, 1, stride, bias=False),
                _norm(norm_cfg, planes * block.expansion))
        layers = [block(self.inplanes, planes, stride, downsample, norm_cfg)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes, norm_cfg=norm_cfg) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def init_weights(self) -> None:
        """torchvision's initialisation (Kaiming-normal fan-out convs, unit BN)."""
        super().init_weights()
        if self.init_cfg is not None:
            return
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode='fan_out', nonlinearity='relu')
            elif isinstance(m, (nn.BatchNorm2d, nn.SyncBatchNorm, nn.GroupNorm)):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)
        if self.zero_init_residual:
            for m in self.modules():
                if isinstance(m, Bottleneck):
                    nn.init.constant_(m.bn3.weight, 0)
                elif isinstance(m, BasicBlock):
                    nn.init.constant_(m.bn2.weight, 0)

    def _freeze_stages(self) -> None:
        if self.frozen_stages >= 0:
            for m in (self.conv1, self.bn1):
                m.eval()
                for p in m.parameters():
                    p.requires_grad = False
        for i in range(1, self.frozen_stages + 1):
            m = getattr(self, f'layer{i}')
            m.eval()
            for p in m.parameters():
                p.requires_grad = False

    def train(self, mode: bool = True) -> 'ResNet':
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.eval()
        return self

    def forward(self, x: torch.Tensor) -> Union[torch.Tensor, Tuple[torch.Tensor, ...]]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        outs = []
        for i in range(4):
            x = getattr(self, f'layer{i + 1}')(x)
            if i in self.out_indices:
                outs.append(x)
        if self.pool:
            return torch.flatten(self.avgpool(x), 1)
        return tuple(outs)
