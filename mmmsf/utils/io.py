"""Files written atomically: a reader, or a crash mid-write, never sees half a file."""
import json
import os
import os.path as osp
import uuid
from typing import Any


def atomic_write_json(path: str, obj: Any, fsync: bool = False, **json_kwargs) -> str:
    """Write ``obj`` as JSON to ``path``: into a temporary file of the same folder (a unique
    name, so concurrent writers never share one), then ``os.replace`` onto ``path``.

    ``path`` holds either its previous content or the whole new one; when ``obj`` cannot be
    serialised the error is raised, the previous file is left as it was and the temporary file
    is removed. The folder is created if missing.

    Args:
        path: the JSON file.
        obj: what to write.
        fsync: flush the new content to disk before the replace (survives a power loss).
        **json_kwargs: passed to :func:`json.dump` (e.g. ``indent=1, default=str``).

    Returns:
        ``path``.
    """
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = osp.join(folder, f'.{osp.basename(path)}.{uuid.uuid4().hex}.tmp')
    try:
        with open(tmp, 'x') as f:
            json.dump(obj, f, **json_kwargs)
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if osp.lexists(tmp):
            os.remove(tmp)
        raise
    return path
