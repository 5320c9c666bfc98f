from .cmsf import CMSF
from .linear_probe import LinearProbe
from .msf import MSF

__all__ = ['CMSF', 'LinearProbe', 'MSF']
