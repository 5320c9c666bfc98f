"""tools/slurm_train.sh and the slurm launcher on a machine without CUDA: the SLURM_* environment
of a job step (set by a stub ``srun`` that starts the tasks) and a stub ``scontrol`` on PATH."""
import os
import os.path as osp
import stat
import subprocess
import sys

import pytest
import torch

from mmmsf.apis.train import slurm_environment
from tests.conftest import ROOT
from tests.test_tools.launch_utils import clean_env, free_port, tiny_run_config
from tests.test_tools.test_multinode import STEPS

SCONTROL = """#!/usr/bin/env bash
# stub of `scontrol show hostname NODELIST`: one host per line, the master first
if [ "$1 $2" != "show hostname" ]; then echo "stub scontrol: unsupported $*" >&2; exit 1; fi
echo 127.0.0.1
echo 127.0.0.2
"""

# A job step as srun starts it: ntasks copies of the command, each with its SLURM_* variables.
SRUN = """#!/usr/bin/env bash
echo "$@" > "$SRUN_ARGS_LOG"
ntasks=1; per_node=1
while [ $# -gt 0 ]; do
  case "$1" in
    --ntasks=*) ntasks=${1#*=} ;;
    --ntasks-per-node=*) per_node=${1#*=} ;;
    -p|-J|-N|-n) shift ;;
    -*) ;;
    *) break ;;
  esac
  shift
done
nodes=$(( (ntasks + per_node - 1) / per_node ))
pids=()
for ((i = 0; i < ntasks; i++)); do
  SLURM_JOB_ID=4242 SLURM_STEP_ID=0 SLURM_PROCID=$i SLURM_LOCALID=$((i % per_node)) \
  SLURM_NODEID=$((i / per_node)) SLURM_NTASKS=$ntasks SLURM_NPROCS=$ntasks \
  SLURM_NNODES=$nodes SLURM_JOB_NUM_NODES=$nodes SLURM_NODELIST="cpu[1-$nodes]" \
  SLURM_STEP_NODELIST="cpu[1-$nodes]" SLURM_TASKS_PER_NODE="$per_node(x$nodes)" \
  SLURMD_NODENAME="cpu$((i / per_node + 1))" "$@" &
  pids+=($!)
done
rc=0
for p in "${pids[@]}"; do wait "$p" || rc=$?; done
exit $rc
"""


def stub_bin(tmp_path) -> str:
    d = tmp_path / 'bin'
    d.mkdir(exist_ok=True)
    for name, text in (('scontrol', SCONTROL), ('srun', SRUN)):
        p = d / name
        p.write_text(text)
        p.chmod(p.stat().st_mode | stat.S_IEXEC)
    return str(d)


def test_slurm_environment_from_job_step(tmp_path, monkeypatch):
    monkeypatch.setenv('PATH', stub_bin(tmp_path) + os.pathsep + os.environ['PATH'])
    for k in ('MASTER_ADDR', 'MASTER_PORT'):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv('SLURM_PROCID', '3')
    monkeypatch.setenv('SLURM_NTASKS', '4')
    monkeypatch.setenv('SLURM_LOCALID', '1')
    monkeypatch.setenv('SLURM_NODELIST', 'cpu[1-2]')
    env = slurm_environment()
    assert env == dict(RANK='3', WORLD_SIZE='4', LOCAL_RANK='1', MASTER_ADDR='127.0.0.1',
                       MASTER_PORT='29500')
    monkeypatch.setenv('MASTER_PORT', '31234')
    monkeypatch.setenv('MASTER_ADDR', '10.0.0.7')  # set by the user: wins over scontrol
    assert slurm_environment()['MASTER_ADDR'] == '10.0.0.7'
    assert slurm_environment()['MASTER_PORT'] == '31234'


def test_slurm_environment_outside_a_job_names_the_fix(monkeypatch):
    for k in ('SLURM_PROCID', 'SLURM_NTASKS', 'SLURM_NODELIST'):
        monkeypatch.delenv(k, raising=False)
    with pytest.raises(RuntimeError, match='srun'):
        slurm_environment()


def test_slurm_train_script_needs_four_arguments():
    r = subprocess.run(['bash', osp.join(ROOT, 'tools/slurm_train.sh'), 'part', 'job'],
                       capture_output=True, text=True)
    assert r.returncode == 2 and 'PARTITION JOB_NAME CONFIG GPUS' in r.stderr


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason='tests the CPU path of the launcher')
def test_slurm_train_two_tasks_without_cuda_sharded_bank(tmp_path):
    """Two Slurm tasks train one model with a sharded bank; the epoch checkpoint, written by
    rank 0, holds the whole bank: rank 0's slots followed by rank 1's."""
    out = tmp_path / 'records'
    out.mkdir()
    cfg = tiny_run_config(tmp_path, str(out), per_class=3)
    env = clean_env(PATH=stub_bin(tmp_path) + os.pathsep + os.environ['PATH'],
                    MASTER_PORT=free_port(), GPUS_PER_NODE=1, PYTHON=sys.executable,
                    SRUN_ARGS_LOG=tmp_path / 'srun_args.txt')
    work = tmp_path / 'work'
    r = subprocess.run(['bash', osp.join(ROOT, 'tools/slurm_train.sh'), 'debug', 'msf-test',
                        cfg, '2', '--work-dir', str(work), '--no-validate',
                        '--cfg-options', 'model.memory_bank.sharded=True'],
                       env=env, capture_output=True, text=True, timeout=600, cwd=str(tmp_path))
    assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
    srun_args = (tmp_path / 'srun_args.txt').read_text().split()
    for arg in ('-p', 'debug', '--job-name=msf-test', '--ntasks=2', '--ntasks-per-node=1',
                '--launcher', 'slurm'):
        assert arg in srun_args, srun_args
    r0, r1 = (torch.load(out / f'rank{r}.pt', weights_only=False) for r in (0, 1))
    assert (r0['rank'], r0['world'], r1['rank'], r1['world']) == (0, 2, 1, 2)
    assert len(r0['losses']) == STEPS and r0['losses'] == r1['losses']
    assert r0['bank'].shape[0] == r1['bank'].shape[0] == 8  # 16 slots, 8 per rank
    ckpt = torch.load(work / 'epoch_1.pth', map_location='cpu', weights_only=False)
    state = ckpt['state_dict']
    assert torch.equal(state['memory_bank.bank'], torch.cat([r0['bank'], r1['bank']]))
    assert torch.equal(state['memory_bank.sample_idx'],
                       torch.cat([r0['sample_idx'], r1['sample_idx']]))
    assert int(state['memory_bank.ptr']) == r0['ptr'] == STEPS * 8 % 16
    assert not any(k.endswith('shard_rows') for k in state)
