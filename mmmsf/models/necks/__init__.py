from .feature_standardizer import FeatureStandardizer
from .mlp_neck import MLPNeck

__all__ = ['FeatureStandardizer', 'MLPNeck']
