"""Tables split across ranks (the sharded bank, M', the slot labels, the per-image cache) in
checkpoints: saved whole, loaded into any world size.

A module with sharded tables registers each one (:meth:`ShardedState.register_sharded`): the
name of the tensor attribute, the global number of rows and this rank's rows ``[start, stop)``.

**Saving: the whole table, gathered at save time.** mmengine writes a checkpoint on rank 0 only
(``Runner.save_checkpoint`` is ``master_only``), so the other ranks' rows must reach rank 0
before the write: :meth:`ShardedState.gather_full_state` (called on every rank, a collective)
gathers each table into rank 0's CPU memory, ``world x chunk`` rows at a time, and while it is
held there ``state_dict()`` on rank 0 holds the whole tables under the keys and shapes of the
replicated ones. ``ShardedStateRunner.save_checkpoint`` does this before every checkpoint, and
:func:`full_state` (``model.full_state()``) is the same as a context manager. We gather rather
than write one file per shard because the checkpoint then stays one self-contained file that any world size, a
replicated bank, the converters and the analysis tools read as they are, and that
``max_keep_ckpts``, ``last_checkpoint`` and copying by hand handle like any other; the price is
``K x D`` bytes of rank 0's host memory during a save (4 GiB for a 2M x 512 float32 bank).

**Loading: re-sharding.** A whole table in a state dict is sliced to this rank's rows, so a
checkpoint of any world size, sharded or not, resumes on any other. A state dict taken without
the gather on a multi-rank run holds only this rank's rows and says so (``<prefix>shard_rows``);
loading it anywhere but into the very same shard is an error naming the fix.
"""
import contextlib
from typing import Dict, Iterator, Optional, Tuple

import torch
import torch.nn as nn
from mmengine.dist import get_rank, get_world_size

from mmmsf.utils.sharding import gather_shards

SHARD_KEY = 'shard_rows'


class ShardedState(nn.Module):
    """Mixin for modules whose tensors ``name`` hold rows ``[start, stop)`` of ``total``."""

    def _sharded_tables(self) -> Dict[str, Tuple[int, int, int, int]]:
        if '_sharding' not in self.__dict__:
            self.__dict__['_sharding'] = {}
            self.__dict__['_staged'] = None
        return self.__dict__['_sharding']

    def register_sharded(self, name: str, total: int, start: int, stop: int,
                         per_rank: int) -> None:
        """Declare ``getattr(self, name)`` to hold global rows ``[start, stop)`` of ``total``;
        global row ``i`` lives on rank ``i // per_rank``."""
        self._sharded_tables()[name] = (total, start, stop, per_rank)

    @property
    def is_split(self) -> bool:
        """Whether this rank holds only part of the registered tables (more than one rank)."""
        return any(stop - start < total
                   for total, start, stop, _ in self._sharded_tables().values())

    def checkpoint_shapes(self) -> Dict[str, Tuple[int, ...]]:
        """Registered table name -> its shape in a checkpoint (the whole table: the global
        number of rows, this rank's shape otherwise)."""
        return {name: (total, ) + tuple(getattr(self, name).shape[1:])
                for name, (total, *_) in self._sharded_tables().items()}

    # ------------------------------------------------------------------ saving
    @torch.no_grad()
    def gather_full_state(self, dst: int = 0) -> None:
        """Collective: gather every registered table to rank ``dst``'s CPU for the next saves."""
        staged = {}
        for name, (total, _, _, per_rank) in self._sharded_tables().items():
            staged[name] = gather_shards(getattr(self, name), total, per_rank, dst)
        self.__dict__['_staged'] = staged if get_rank() == dst else {}

    def release_full_state(self) -> None:
        self._sharded_tables()
        self.__dict__['_staged'] = None

    def _save_sharded(self, destination: Dict, prefix: str) -> None:
        """Replace this rank's rows in ``destination`` by the whole tables (or mark the shard)."""
        tables = self._sharded_tables()
        if not self.is_split:
            return
        staged = self.__dict__.get('_staged')
        if staged:
            for name in tables:
                destination[prefix + name] = staged[name]
            return
        total, start, stop, _ = next(iter(tables.values()))
        destination[prefix + SHARD_KEY] = torch.tensor([start, stop, total, get_world_size()])

    def _save_to_state_dict(self, destination, prefix, keep_vars) -> None:
        super()._save_to_state_dict(destination, prefix, keep_vars)
        self._save_sharded(destination, prefix)

    # ------------------------------------------------------------------ loading
    def _reshard(self, state_dict: Dict, prefix: str, unexpected_keys=None) -> Dict:
        """``state_dict`` with every whole registered table cut to this rank's rows."""
        tables = self._sharded_tables()
        marker = state_dict.get(prefix + SHARD_KEY)
        out = dict(state_dict)
        if marker is not None:
            out.pop(prefix + SHARD_KEY)
            if unexpected_keys is not None and prefix + SHARD_KEY in unexpected_keys:
                unexpected_keys.remove(prefix + SHARD_KEY)
        for name, (total, start, stop, _) in tables.items():
            key = prefix + name
            if key not in state_dict:
                continue
            rows = state_dict[key].shape[0] if state_dict[key].dim() else None
            if marker is not None:
                m_start, m_stop, m_total, m_world = (int(x) for x in marker)
                if (m_start, m_stop, m_total) != (start, stop, total):
                    raise ValueError(
                        f'{key} holds rows {m_start}:{m_stop} of {m_total} (one rank of a '
                        f'{m_world}-rank sharded run), not the whole table: this rank needs '
                        f'rows {start}:{stop}. Save with the Runner (ShardedStateRunner gathers '
                        'the whole bank before every checkpoint) or inside '
                        '`with model.full_state(): model.state_dict()`.')
                continue
            if rows != total:
                raise ValueError(self.shape_error(key, rows, total))
            if stop - start < total:
                out[key] = state_dict[key][start:stop]
        return out

    def shape_error(self, key: str, rows: Optional[int], total: int) -> str:
        return (f'checkpoint {key} has {rows} rows, this model {total}: resume with the '
                'configuration the run started with (the same model.memory_bank.size), or '
                'load only the weights with load_from.')

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                              unexpected_keys, error_msgs) -> None:
        state_dict = self._reshard(state_dict, prefix, unexpected_keys)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys,
                                      unexpected_keys, error_msgs)


def split_modules(module: nn.Module) -> Iterator[Tuple[str, ShardedState]]:
    """(name, submodule) of every :class:`ShardedState` in ``module`` that is split across
    ranks (``is_split``)."""
    for name, mod in module.named_modules():
        if isinstance(mod, ShardedState) and mod.is_split:
            yield name, mod


@contextlib.contextmanager
def full_state(module: nn.Module, dst: int = 0) -> Iterator[nn.Module]:
    """Within the block, ``module.state_dict()`` on rank ``dst`` holds every split table whole,
    under the keys and shapes of the replicated ones. Entering gathers them to ``dst``'s CPU:
    call it on every rank (a collective; nothing to do when no table is split)."""
    parts = [mod for _, mod in split_modules(module)]
    for mod in parts:
        mod.gather_full_state(dst)
    try:
        yield module
    finally:
        for mod in parts:
            mod.release_full_state()
