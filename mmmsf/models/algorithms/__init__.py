from .msf import MSF

__all__ = ['MSF']
