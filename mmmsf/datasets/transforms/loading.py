"""Image loading that fails loudly, naming the file and the fix."""
import mmcv
import mmengine.fileio as fileio
import numpy as np
from mmcv.transforms import BaseTransform

from mmmsf.registry import TRANSFORMS


@TRANSFORMS.register_module()
class LoadImageFromFile(BaseTransform):
    """Read ``results['img_path']`` as an HWC uint8 BGR array (mmcv's convention).

    A missing or undecodable file raises ``IOError`` naming it -- never a silent skip.
    """

    def __init__(self, imdecode_backend: str = 'cv2', backend_args=None):
        self.imdecode_backend, self.backend_args = imdecode_backend, backend_args

    def transform(self, results: dict) -> dict:
        path = results['img_path']
        try:
            data = fileio.get(path, backend_args=self.backend_args)
        except FileNotFoundError:
            raise IOError(f'image {path!r} is missing: restore it, or remove it from the dataset '
                          'folder / list file.') from None
        img = None
        try:
            img = mmcv.imfrombytes(data, flag='color', backend=self.imdecode_backend)
        except Exception:  # noqa: BLE001 - any decoder failure is reported below
            img = None
        if img is None or img.size == 0:
            raise IOError(f'image {path!r} is corrupt or not an image ({len(data)} bytes): '
                          'replace or delete the file.')
        results['img'] = img.astype(np.uint8, copy=False)
        results['img_shape'] = img.shape[:2]
        results['ori_shape'] = img.shape[:2]
        return results
