from .mlp_neck import MLPNeck

__all__ = ['MLPNeck']
