"""The command lines of ``tools/``: the options they share (:func:`default_argument_parser`),
and running a tool under ``tools/dist_*.sh`` with one short message when the processes fail.

``tools/dist_*.sh`` set ``MMMSF_ERROR_DIR``. There, each process's error is written to
``rank<R>.err`` (one line) and ``rank<R>.traceback`` (the full traceback) instead of the
terminal, rank 0's standard error goes to its standard output (live, with the log), the other
ranks' to ``rank<R>.stderr``; the launcher's own report goes to ``launcher.log``. The script
then prints the first error that happened, once, with the paths of the rest. The scripts also
set ``MMMSF_LAUNCHER_PID`` (their own pid): the processes stop when the script is gone.
"""
import argparse
import atexit
import os
import os.path as osp
import sys
import threading
import time
import traceback
from typing import Callable, Optional, Sequence, Union

import torch.distributed as dist

from mmmsf.apis.config import DictAction

LAUNCHERS = ('none', 'pytorch', 'slurm', 'mpi')


class ToolArgumentParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` that also checks the options of :func:`default_argument_parser`
    together: a ``checkpoint`` positional needs a CHECKPOINT or ``--random-init``, not both."""

    needs_checkpoint = False

    def parse_args(self, args: Optional[Sequence[str]] = None,
                   namespace: Optional[argparse.Namespace] = None) -> argparse.Namespace:
        parsed = super().parse_args(args, namespace)
        if self.needs_checkpoint and bool(parsed.checkpoint) == parsed.random_init:
            self.error('give a CHECKPOINT or --random-init (not both).')
        return parsed


def default_argument_parser(description: str, config: bool = True, checkpoint: bool = False,
                            work_dir: bool = False, data_root: Union[bool, str] = True,
                            launcher: bool = False, device: bool = False,
                            epilog: Optional[str] = None) -> ToolArgumentParser:
    """The parser of a ``tools/`` command with the options the tools share, each declared once
    (as detectron2's ``default_argument_parser``); a tool adds its own options to it.

    Always ``--cfg-options KEY=VALUE ...`` (mmengine's syntax, one clear error per bad item).
    ``config``: the ``CONFIG`` positional. ``checkpoint``: ``CHECKPOINT`` (optional) and
    ``--random-init``, exactly one of them. ``work_dir``: ``--work-dir``. ``data_root``:
    ``--data-root`` (the ``data_root`` of every dataset; a string: its help). ``launcher``:
    ``--launcher`` and ``--local-rank`` (set by torch's launchers). ``device``: ``--device``.
    """
    p = ToolArgumentParser(description=description, epilog=epilog,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    if config:
        p.add_argument('config', help='the config file (configs/...)')
    if checkpoint:
        p.needs_checkpoint = True
        p.add_argument('checkpoint', nargs='?', help='the checkpoint to evaluate')
        p.add_argument('--random-init', action='store_true',
                       help='evaluate the untrained model instead (the baseline)')
    if work_dir:
        p.add_argument('--work-dir', help='where logs, checkpoints and results go')
    if data_root:
        p.add_argument('--data-root', help=data_root if isinstance(data_root, str) else
                       'override the data_root of every dataset (e.g. a full CIFAR-10 or '
                       'ImageNet ImageFolder)')
    if device:
        p.add_argument('--device', help="e.g. 'cpu' or 'cuda' (default: cuda where present)")
    if launcher:
        p.add_argument('--launcher', choices=LAUNCHERS, default='none',
                       help='set by tools/dist_*.sh and tools/slurm_train.sh')
        p.add_argument('--local-rank', '--local_rank', type=int, default=0,
                       help=argparse.SUPPRESS)
    p.add_argument('--cfg-options', nargs='+', action=DictAction, metavar='KEY=VALUE',
                   help='override config keys (mmengine syntax, e.g. train_cfg.max_epochs=1)')
    return p


def watch_launcher(pid: int, interval: float = 1.0) -> threading.Thread:
    """End this process (exit status 143, as on SIGTERM) soon after process ``pid`` -- the
    launch script -- is gone.

    torchrun starts the ranks in sessions of their own, so killing the launch script (even
    ``kill -9``) left them training, beside any new run in their work dir. Each rank checks
    every ``interval`` seconds that the script is still there."""
    def watch() -> None:
        while True:
            time.sleep(interval)
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                sys.stderr.write(f'the launch script (pid {pid}) is gone: stopping.\n')
                sys.stderr.flush()
                os._exit(143)
            except PermissionError:  # alive, owned by someone else
                pass

    thread = threading.Thread(target=watch, name='launcher-watch', daemon=True)
    thread.start()
    return thread


# whether run_tool registered end_process_group, and whether the last main() returned
_EXIT = dict(registered=False, finished=False)


def run_tool(main: Callable[[], None]) -> None:
    """Call ``main()``; under ``tools/dist_*.sh`` report a failure as described above, and
    stop when the launch script is gone (``MMMSF_LAUNCHER_PID``). When the process exits after
    a ``main()`` that returned, its process group (if any) is ended on every rank together
    (:func:`end_process_group`)."""
    launcher_pid = os.environ.get('MMMSF_LAUNCHER_PID', '')
    if launcher_pid.isdigit():
        watch_launcher(int(launcher_pid))
    if not _EXIT['registered']:
        atexit.register(end_process_group)
        _EXIT['registered'] = True
    _EXIT['finished'] = False
    err_dir = os.environ.get('MMMSF_ERROR_DIR')
    if not err_dir or not osp.isdir(err_dir):
        main()
        _EXIT['finished'] = True
        return
    rank = int(os.environ.get('RANK', os.environ.get('LOCAL_RANK', 0)))
    sys.stdout.flush()
    sys.stderr.flush()
    if rank == 0:
        os.dup2(sys.stdout.fileno(), sys.stderr.fileno())
    else:
        fd = os.open(osp.join(err_dir, f'rank{rank}.stderr'),
                     os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(fd, sys.stderr.fileno())
        os.close(fd)
    try:
        main()
        _EXIT['finished'] = True
    except SystemExit as e:  # argparse and explicit exits: their message is already printed
        if e.code not in (0, None):
            _write(err_dir, rank, f'exited with status {e.code} (message above)', '')
        raise
    except BaseException as e:  # noqa: BLE001 - reported once by the launch script
        text = str(e).strip() or type(e).__name__
        if isinstance(e, KeyError) and len(e.args) == 1 and isinstance(e.args[0], str):
            text = e.args[0]  # KeyError's str() adds quotes
        _write(err_dir, rank, one_line(f'{type(e).__name__}: {text}'), traceback.format_exc())
        sys.stderr.flush()
        os._exit(1)


def end_process_group() -> None:
    """At exit (registered by :func:`run_tool`): after a ``main()`` that returned, wait for
    every rank, then destroy the default process group, if one exists.

    Left to the interpreter's teardown, the group's communication threads were destroyed
    while another rank could still be finishing, and a rank of a finished run once aborted
    (``terminate called without an active exception``). Nothing is done after a failed
    ``main()`` (the other ranks may never arrive), and a process that runs several tools one
    after another keeps its group between them."""
    if _EXIT['finished'] and dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def one_line(message: str) -> str:
    """An error message on one line. A message that holds a traceback (an error re-raised from a
    data-loader worker: ``Caught X in DataLoader worker process 0. Original Traceback ...``)
    becomes its last exception line -- the real cause, e.g. the unreadable image's path -- with
    the first line after it."""
    lines = [ln.rstrip() for ln in message.splitlines() if ln.strip()]
    if len(lines) <= 1:
        return lines[0] if lines else message.strip()
    # the exception line: not indented, not a caret marker line (~~~^^^), not 'File ...'
    causes = [ln for ln in lines[1:] if not ln[0].isspace() and ln.strip('~^ ')
              and not ln.startswith(('Traceback', 'Original Traceback'))]
    if not causes:
        return ' '.join(ln.strip() for ln in lines)
    return f'{causes[-1]} ({lines[0]})'


def _write(err_dir: str, rank: int, message: str, tb: str) -> None:
    with open(osp.join(err_dir, f'rank{rank}.traceback'), 'w') as f:
        f.write(tb)
    tmp = osp.join(err_dir, f'.rank{rank}.err')
    with open(tmp, 'w') as f:
        f.write(f'{time.time():.6f} rank {rank}: {message}\n')
    os.replace(tmp, osp.join(err_dir, f'rank{rank}.err'))
