"""Small helpers shared by the hooks, the apis and the tools."""
import torch.nn as nn
from mmengine.model import is_model_wrapper


def get_ori_model(model: nn.Module) -> nn.Module:
    """The model inside a wrapper (``MMDistributedDataParallel`` and friends), else ``model``."""
    return model.module if is_model_wrapper(model) else model
