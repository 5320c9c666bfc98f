"""One run per work dir: an exclusive lock held while a training run is alive.

Two runs writing one work dir (a ``--resume`` started beside a run that is still training)
overwrite each other's checkpoints, ``last_checkpoint`` and ``eval/knn.json``. The lock is an
``flock`` on ``<work_dir>/.mmmsf_run.lock``: the kernel releases it when its process ends, however
it ends (``kill -9`` included), so it never goes stale; forked children (data-loader workers)
close their copy of it, so a killed run's lingering workers do not hold it. The file names the
holder (pid, host, start time) for the message of the run that is refused.
"""
import contextlib
import os
import os.path as osp
import socket
import time
from typing import Iterator, Set

LOCK_NAME = '.mmmsf_run.lock'
# Descriptors of the locks this process holds. A forked child (a data-loader worker) would share
# the lock through its copy of the descriptor and keep it after the run is killed, so children
# close their copies at once.
_HELD: Set[int] = set()


def _close_in_child() -> None:
    for fd in _HELD:
        try:
            os.close(fd)
        except OSError:
            pass
    _HELD.clear()


os.register_at_fork(after_in_child=_close_in_child)


@contextlib.contextmanager
def work_dir_lock(work_dir: str) -> Iterator[str]:
    """Hold the work dir's lock for the ``with`` block; one ``RuntimeError`` naming the other
    run if it is held. Yields the lock file's path."""
    import fcntl
    os.makedirs(work_dir, exist_ok=True)
    path = osp.join(work_dir, LOCK_NAME)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(fd, 4096, 0).decode(errors='replace').strip() or 'unknown'
            raise RuntimeError(
                f'work dir {work_dir!r} is in use by another run ({holder}): two runs in one '
                "work dir overwrite each other's checkpoints and results. Wait for it to end or "
                'stop it, or give this run another --work-dir.') from None
        _HELD.add(fd)
        os.ftruncate(fd, 0)
        os.pwrite(fd, (f'pid {os.getpid()} on {socket.gethostname()}, started '
                       f'{time.strftime("%Y-%m-%d %H:%M:%S")}\n').encode(), 0)
        try:
            yield path
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        _HELD.discard(fd)
        os.close(fd)
