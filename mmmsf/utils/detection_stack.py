"""Is the detection stack (mmdet + mmcv's compiled ops) installed?

The demo's light install (``bash tools/setup_env.sh``) has mmcv without compiled ops and no
mmdet: pre-training, kNN and the linear probe need neither. Detection transfer needs both, and
``bash tools/setup_env.sh --full`` builds them once. The check looks the modules up without
importing them, so it costs nothing on either install.
"""
import importlib.util
from typing import Optional

FULL_INSTALL_COMMAND = 'bash tools/setup_env.sh --full'


def _missing(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is None
    except (ImportError, ValueError):  # parent package absent, or a broken module entry
        return True


def detection_stack_missing() -> Optional[str]:
    """None when mmdet and ``mmcv._ext`` can be imported, else a one-line message saying how."""
    missing = [name for name, mod in (("mmcv's compiled ops", 'mmcv._ext'), ('mmdet', 'mmdet'))
               if _missing(mod)]
    if not missing:
        return None
    return (f"Detection needs {' and '.join(missing)}, which the light install leaves out: "
            f"build them once with `{FULL_INSTALL_COMMAND}` (10-30 min on 2 cores, cached).")


def require_detection_stack() -> None:
    """Stop a detection command with one line (no traceback) when the stack is missing."""
    msg = detection_stack_missing()
    if msg:
        raise SystemExit(msg)
