"""CMSF: Constrained Mean Shift (Tejankar, Koohpayegani, Navaneet, Pourahmadi, Subramanya,
Pirsiavash).

MSF pulls the online prediction ``v`` towards the top-k neighbours of the target ``u`` in the
memory bank M. CMSF searches a constrained subset C of M instead, to reach far-away neighbours
that are still of the query's class (paper §3). One step::

    u = target(x_t), v = online(x_o)                    # as MSF
    side = index, label (+ u' of a third view, or u's previous-visit embedding, if asked for,
                         + what the selector derives once per step, e.g. pseudo-labels)
    slots = M.enqueue(all_gather(u))
    after_enqueue(slots, u, side):
        constrained_selector.after_enqueue(...)         # e.g. M' slots, per-slot labels
        cache[index] = u                                # per-image latest target embedding
    idx_c = top-k of u in C                             # the constrained selector
    idx_u = top-k of u in M                             # MSF's selector
    loss = w_c * L(v, M[idx_c]) + w_u * L(v, M[idx_u])  # L: MSF's Eq. 2

Self-supervised variants (CMSF-KM, CMSF-2Q) average both terms (w_c = w_u = 0.5, authors'
code); supervised and semi-supervised CMSF use the constrained term only (w_u = 0). The constraint
itself is a registered selector (``mmmsf/models/selectors``): naming another one in the config is
all it takes to change it. CMSF computes for it the side information it declares in
``requires``: ``sample_idx``, ``labels``, ``extra_view_target`` (target embedding of view
``extra_view``) and ``previous_target``/``previous_valid`` (from the embedding cache, before this
step's update).

Logged each step (loss dict; configs average them over the logging interval): ``purity`` of the
constrained neighbours and ``unconstrained_purity`` (self excluded, paper Fig. 4), the fraction of
constrained queries ``constrained_frac``, the share of constrained queries whose C is smaller than
k ``c_short_frac``, and -- the data behind the paper's histogram of constrained-sample ranks --
``rank_mean`` (mean rank in the unconstrained order of the constrained neighbours, self excluded)
and ``rank_outside_topk`` (share of them that MSF's top-k would not have picked). The per-
neighbour ranks are also published every step as the message-hub info ``constrained_ranks``
(1-based; 0 for unconstrained queries), which :class:`~mmmsf.engine.hooks.ConstrainedRankHook`
turns into per-epoch histograms.
"""
from typing import Dict, Optional, Tuple

import torch
import torch.nn as nn
from mmengine.dist import get_rank
from mmengine.logging import MessageHub

from mmmsf.registry import MODELS
from mmmsf.utils.knn_search import unconstrained_ranks
from mmmsf.utils.dist_utils import all_gather_rows
from ..selectors import BaseSelector, SelectorOutput
from .msf import MSF, target_std

#: Message-hub info key of the per-step constrained-neighbour ranks (written here, read by
#: :class:`~mmmsf.engine.hooks.ConstrainedRankHook`).
RANKS_INFO_KEY = 'constrained_ranks'
#: Constraints maintained by hooks: kind -> (selector type, the method the hook calls).
CONSTRAINT_KINDS = {'kmeans': ('KMeansSelector', 'set_cluster_ids'),
                    'pseudo_label': ('PseudoLabelSelector', 'fit')}
SIDE_PROVIDED = ('sample_idx', 'labels', 'extra_view_target', 'previous_target',
                 'previous_valid')


@MODELS.register_module()
class CMSF(MSF):
    """Constrained mean shift: MSF plus a constrained neighbour selector.

    Args:
        constrained_selector: config of the selector defining C (``KMeansSelector``,
            ``TwoQueueSelector``, ``SupervisedSelector``, ``PseudoLabelSelector`` or any
            registered :class:`~mmmsf.models.selectors.BaseSelector`).
        loss_weights: ``dict(constrained=w_c, unconstrained=w_u)``; 0.5/0.5 for the
            self-supervised variants, 1/0 for supervised and semi-supervised CMSF.
        embedding_cache: config of :class:`~mmmsf.models.memories.EmbeddingCache` (per-image
            latest target embeddings; needed by CMSF-KM, semi-supervised CMSF and the
            previous-visit CMSF-2Q). ``dim`` defaults to the bank's, ``device_limit`` to its size.
        extra_view: index of an extra pipeline view whose target embedding is the selector's
            ``extra_view_target`` (the third view of the paper's CMSF-2Q).
        rank_stats: compute the unconstrained ranks of the constrained neighbours (two more
            passes over the bank per step for the constrained queries).
        **kwargs: everything :class:`MSF` takes (``selector`` is the unconstrained one).
    """

    def __init__(self, constrained_selector: dict,
                 loss_weights: dict = dict(constrained=0.5, unconstrained=0.5),
                 embedding_cache: Optional[dict] = None, extra_view: Optional[int] = None,
                 rank_stats: bool = True, **kwargs):
        super().__init__(**kwargs)
        unknown = set(loss_weights) - {'constrained', 'unconstrained'}
        if unknown:
            raise KeyError(f'CMSF loss_weights has unknown keys {sorted(unknown)}: use '
                           "'constrained' and 'unconstrained'.")
        self.w_constrained = float(loss_weights.get('constrained', 0.0))
        self.w_unconstrained = float(loss_weights.get('unconstrained', 0.0))
        if min(self.w_constrained, self.w_unconstrained) < 0 or \
                self.w_constrained + self.w_unconstrained <= 0:
            raise ValueError(f'CMSF loss_weights={loss_weights}: weights must be >= 0 and not '
                             'both 0.')
        self.constrained_selector = MODELS.build(constrained_selector)
        if not isinstance(self.constrained_selector, BaseSelector):
            raise TypeError(f'CMSF constrained_selector {type(self.constrained_selector).__name__}'
                            ' is not a BaseSelector: derive it from mmmsf.models.selectors.'
                            'ConstrainedSelector (or BaseSelector).')
        self.constrained_selector.bind(self.memory_bank)
        if embedding_cache is not None:
            cache_cfg = dict(embedding_cache)
            cache_cfg.setdefault('type', 'EmbeddingCache')
            cache_cfg.setdefault('dim', self.memory_bank.dim)
            cache_cfg.setdefault('device_limit', self.memory_bank.size)
            cache_cfg.setdefault('sharded', self.memory_bank.sharded)
            self.embedding_cache = MODELS.build(cache_cfg)
        else:
            self.embedding_cache = None
        self.extra_view = extra_view
        self.rank_stats = rank_stats
        requires = tuple(self.constrained_selector.requires)
        unknown = [r for r in requires if r not in SIDE_PROVIDED]
        if unknown:
            raise ValueError(f'{type(self.constrained_selector).__name__} requires {unknown}, '
                             f'which CMSF does not provide (it provides {SIDE_PROVIDED}).')
        if 'extra_view_target' in requires and extra_view is None:
            raise ValueError(f'{type(self.constrained_selector).__name__} needs the target '
                             'embedding of an extra view: set model.extra_view (e.g. 2) and a '
                             'third pipeline in MultiView.')
        if 'previous_target' in requires and self.embedding_cache is None:
            raise ValueError(f'{type(self.constrained_selector).__name__} needs previous-visit '
                             'embeddings: set model.embedding_cache=dict(type=\'EmbeddingCache\') '
                             "and add dict(type='EmbeddingCacheHook') to custom_hooks.")
        self._requires = requires

    # ------------------------------------------------------------------ for the hooks
    def constraint(self, kind: str, user: str = 'this hook') -> Tuple[nn.Module, nn.Module]:
        """(constrained selector, embedding cache) for a hook that maintains the constraint
        ``kind`` (``'kmeans'``: cluster ids; ``'pseudo_label'``: the pseudo-labeller), or one
        clear error naming what ``user`` needs in the config."""
        if kind not in CONSTRAINT_KINDS:
            raise KeyError(f'CMSF.constraint({kind!r}): use one of {sorted(CONSTRAINT_KINDS)}.')
        selector_type, method = CONSTRAINT_KINDS[kind]
        if not hasattr(self.constrained_selector, method):
            raise ValueError(f'{user} needs a CMSF model with '
                             f"constrained_selector=dict(type='{selector_type}').")
        if self.embedding_cache is None:
            raise ValueError(f'{user} needs the embedding cache: set '
                             "model.embedding_cache=dict(type='EmbeddingCache') and add "
                             "dict(type='EmbeddingCacheHook') to custom_hooks.")
        return self.constrained_selector, self.embedding_cache

    # ------------------------------------------------------------------ side information
    def extra_side_info(self, inputs, u: torch.Tensor, side: dict) -> Dict[str, torch.Tensor]:
        out: Dict[str, torch.Tensor] = {}
        if 'extra_view_target' in self._requires:
            if len(inputs) <= self.extra_view:
                raise ValueError(f'CMSF extra_view={self.extra_view} but the pipeline gives '
                                 f'{len(inputs)} views: add a pipeline to MultiView.')
            out['extra_view_target'] = self.target_embed(inputs[self.extra_view])
        if 'previous_target' in self._requires:
            prev, valid = self.embedding_cache.get(side['sample_idx'], device=u.device)
            out['previous_target'], out['previous_valid'] = prev, valid
        out.update(self.constrained_selector.step_inputs(u, **side, **out))
        return out

    # ------------------------------------------------------------------ the step
    @torch.no_grad()
    def after_enqueue(self, slots: torch.Tensor, u: torch.Tensor,
                      side: Dict[str, torch.Tensor]) -> None:
        """Keep the selector's state (M', per-slot labels) and the embedding cache in step with
        the bank ``slots`` this step's all-gathered targets were written to."""
        bank = self.memory_bank
        self.constrained_selector.after_enqueue(bank, slots, u, **side)
        if self.embedding_cache is not None:
            emb, sample_idx = bank.read_written(slots)
            self.embedding_cache.update(sample_idx, emb)

    def select_neighbours(self, u: torch.Tensor,
                          side: Dict[str, torch.Tensor]) -> Dict[str, SelectorOutput]:
        """``'constrained'``: top-k of u in C; ``'unconstrained'``: MSF's top-k in M."""
        bank = self.memory_bank
        return dict(constrained=self.constrained_selector(u, bank, self.topk, **side),
                    unconstrained=self.selector(u, bank, self.topk, **side))

    def mean_shift_losses(self, v: torch.Tensor,
                          neighbours: Dict[str, SelectorOutput]) -> Dict[str, torch.Tensor]:
        """``w_c * L(v, M[idx_c])`` and ``w_u * L(v, M[idx_u])`` (each term only if its weight
        is > 0); losses only, no state change."""
        bank = self.memory_bank
        losses: Dict[str, torch.Tensor] = {}
        if self.w_constrained > 0:
            losses['loss_constrained'] = self.w_constrained * self.loss_module(
                v, bank.get(neighbours['constrained'].indices))
        if self.w_unconstrained > 0:
            losses['loss_unconstrained'] = self.w_unconstrained * self.loss_module(
                v, bank.get(neighbours['unconstrained'].indices))
        return losses

    @torch.no_grad()
    def step_stats(self, u: torch.Tensor, neighbours: Dict[str, SelectorOutput],
                   side: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        out = self.constraint_stats(u, neighbours['constrained'], neighbours['unconstrained'],
                                    side['labels'])
        out['target_std'] = target_std(u)
        return out

    # ------------------------------------------------------------------ statistics
    @torch.no_grad()
    def constrained_ranks(self, u: torch.Tensor, con: SelectorOutput) -> torch.Tensor:
        """Unconstrained rank of each constrained neighbour (0 for unconstrained queries)."""
        bank = self.memory_bank
        chunk = min(bank.chunk_size, 16384)
        if bank.is_split:  # a collective over all ranks' queries
            b, rank = u.shape[0], get_rank()
            idx_all = all_gather_rows(con.indices)
            rows = torch.nonzero(all_gather_rows(con.constrained)).flatten()
            ranks = torch.zeros_like(idx_all)
            u_all = all_gather_rows(u)
            if rows.numel():  # the same rows on every rank
                ranks[rows] = bank.unconstrained_ranks(u_all[rows], idx_all[rows], chunk)
            return ranks[rank * b:(rank + 1) * b]
        ranks = torch.zeros_like(con.indices)
        rows = torch.nonzero(con.constrained).flatten()
        if rows.numel():
            ranks[rows] = unconstrained_ranks(u[rows], bank.bank, con.indices[rows], chunk)
        return ranks


    @torch.no_grad()
    def constraint_stats(self, u: torch.Tensor, con: SelectorOutput, unc: SelectorOutput,
                         labels: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Purities, constrained fraction, |C| < k share, ranks (see the module docstring).

        With ``rank_stats`` the per-neighbour ranks are also published as the message-hub info
        :data:`RANKS_INFO_KEY`, read by :class:`~mmmsf.engine.hooks.ConstrainedRankHook`.
        """
        out = self.neighbour_stats(con, labels)
        out.update(self.neighbour_stats(unc, labels, prefix='unconstrained_'))
        constrained = con.constrained
        n_con = constrained.sum()
        out['constrained_frac'] = constrained.float().mean()
        c_size = con.extras.get('c_size')
        if c_size is not None:
            out['c_short_frac'] = ((c_size < self.topk) & constrained).sum() / n_con.clamp(min=1)
        for name, val in con.extras.items():
            if name.startswith('ratio/'):
                val = val.sum(dim=0) if val.dim() == 2 else val  # per-query terms
                out[name[len('ratio/'):]] = val[0] / val[1].clamp(min=1)
        if self.rank_stats:
            ranks = self.constrained_ranks(u, con)
            rows = torch.nonzero(constrained).flatten()
            MessageHub.get_current_instance().update_info(RANKS_INFO_KEY, ranks,
                                                          resumed=False)
            if self.topk > 1 and rows.numel():
                others = ranks[rows][:, 1:].float()
                out['rank_mean'] = others.mean()
                out['rank_outside_topk'] = (others > self.topk).float().mean()
        return out
