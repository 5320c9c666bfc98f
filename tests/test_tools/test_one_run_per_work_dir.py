"""One run per work dir: a second run beside a live one is refused with one message, and the
ranks of tools/dist_train.sh stop when the script is killed (even with kill -9)."""
import os
import os.path as osp
import signal
import subprocess
import sys
import time

import pytest

from mmmsf.apis import load_config, prepare_train_cfg, train
from mmmsf.utils.work_dir_lock import LOCK_NAME, work_dir_lock
from tests.conftest import MINI, ROOT
from tests.test_apis.test_config_errors import MSF_DEMO, _outputs, _tiny
from tests.test_tools.launch_utils import clean_env, free_port, tiny_run_config

HOLD = ('import sys, time\nfrom mmmsf.utils.work_dir_lock import work_dir_lock\n'
        'with work_dir_lock(sys.argv[1]):\n    print("held", flush=True)\n    time.sleep(120)\n')


def test_a_second_run_in_a_live_work_dir_is_refused(tmp_path):
    work = str(tmp_path / 'w')
    holder = subprocess.Popen([sys.executable, '-c', HOLD, work], stdout=subprocess.PIPE,
                              text=True, env=dict(os.environ, PYTHONPATH=ROOT))
    try:
        assert holder.stdout.readline().strip() == 'held'
        cfg = prepare_train_cfg(load_config(MSF_DEMO, _tiny(tmp_path), data_root=MINI),
                                work_dir=work)
        with pytest.raises(RuntimeError) as e:
            train(cfg)
        msg = str(e.value)
        assert f'is in use by another run (pid {holder.pid} on ' in msg and '\n' not in msg
        assert 'another --work-dir' in msg and _outputs(work) == []
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    with work_dir_lock(work):  # the kernel released it with the killed holder: never stale
        pass


def _ranks_of(launcher_pid: int):
    """pids of the live processes started by the launch script ``launcher_pid``."""
    found = []
    for pid in os.listdir('/proc'):
        if not pid.isdigit():
            continue
        try:
            with open(f'/proc/{pid}/environ', 'rb') as f:
                env = f.read().split(b'\0')
            with open(f'/proc/{pid}/stat') as f:
                state = f.read().rsplit(')', 1)[1].split()[0]
        except OSError:
            continue
        if f'MMMSF_LAUNCHER_PID={launcher_pid}'.encode() in env and state != 'Z':
            found.append(int(pid))
    return found


@pytest.mark.slow
@pytest.mark.skipif(not osp.isdir('/proc'), reason='reads /proc')
def test_ranks_stop_when_the_launch_script_is_killed(tmp_path):
    cfg = tiny_run_config(tmp_path, str(tmp_path), per_class=3, epochs=500, bank=24)
    work = tmp_path / 'w'
    script = subprocess.Popen(
        ['bash', osp.join(ROOT, 'tools/dist_train.sh'), cfg, '2', '--work-dir', str(work),
         '--no-validate'], env=clean_env(PORT=free_port(), PYTHON=sys.executable),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=str(tmp_path),
        start_new_session=True)
    try:
        deadline = time.time() + 300
        while not list(work.glob('epoch_*.pth')):  # training has begun
            assert script.poll() is None and time.time() < deadline
            time.sleep(0.5)
        ranks = _ranks_of(script.pid)
        assert len(ranks) >= 3  # torchrun's agent and two ranks
        os.kill(script.pid, signal.SIGKILL)
        script.wait()
        deadline = time.time() + 60
        while _ranks_of(script.pid) and time.time() < deadline:
            time.sleep(0.5)
        assert _ranks_of(script.pid) == []
        with work_dir_lock(str(work)):  # and the work dir is free again
            pass
        assert (work / LOCK_NAME).is_file()
    finally:
        for pid in _ranks_of(script.pid):
            os.kill(pid, signal.SIGKILL)


def test_forked_children_do_not_keep_the_lock(tmp_path):
    """A data-loader worker forked while the lock is held must not hold it after its parent
    is gone (a killed run's lingering workers refused the resume)."""
    work = str(tmp_path / 'w')
    code = ('import os, sys, time\nfrom mmmsf.utils.work_dir_lock import work_dir_lock\n'
            'with work_dir_lock(sys.argv[1]):\n'
            '    if os.fork() == 0:\n        time.sleep(60)\n        os._exit(0)\n'
            '    print("forked", flush=True)\n    time.sleep(60)\n')
    parent = subprocess.Popen([sys.executable, '-c', code, work], stdout=subprocess.PIPE,
                              text=True, env=dict(os.environ, PYTHONPATH=ROOT),
                              start_new_session=True)
    try:
        assert parent.stdout.readline().strip() == 'forked'
        os.kill(parent.pid, signal.SIGKILL)  # the child lives on
        parent.wait()
        with work_dir_lock(work):
            pass
    finally:
        os.killpg(parent.pid, signal.SIGKILL)
