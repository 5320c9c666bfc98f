"""Semi-supervised CMSF's pseudo-labeller: an MLP trained on the cached target embeddings of the
labelled images, at mid-epoch and at each epoch end (paper §3.2).

The labelled subset is a file list with one image path per line, relative to the training
split's folder (``n01440764/n01440764_10026.JPEG``), optionally followed by a label -- the
format of the public ImageNet 1% / 10% lists; the names are resolved as the dataset's
``ann_file`` (:func:`~mmmsf.datasets.label_subset.resolve_subset_list`: ``<class>/<file>``, a
bare SimCLR name, or a bare file name only one image has). Every listed image must be in the
training set, or the run stops naming the first entry that is not.

Each round (authors' code: 10 epochs, SGD lr 0.01, momentum 0.9, weight decay 1e-4, batch
256, a fresh optimiser per round, the classifier's weights kept between rounds) trains a copy
of the selector's classifier on ``(cache[i], label[i])`` for the labelled images with a cached
embedding, on rank 0; the weights are broadcast to every rank and installed in the
:class:`~mmmsf.models.selectors.PseudoLabelSelector`, whose threshold decides which unlabelled
queries get a constraint. The classifier is part of the model, hence of every checkpoint.
"""
import os.path as osp
import time
from typing import Dict, List, Optional

import torch
from mmengine.dist import broadcast, get_rank
from mmengine.hooks import Hook

from mmmsf.datasets.label_subset import resolve_subset_list
from mmmsf.registry import HOOKS
from mmmsf.utils.misc import get_ori_model


def read_labelled_list(path: str, dataset, data_root: Optional[str] = None) -> List[int]:
    """Dataset indices of the images listed in ``path`` (see the module docstring)."""
    if not osp.isfile(path) and data_root and osp.isfile(osp.join(data_root, path)):
        path = osp.join(data_root, path)
    if not osp.isfile(path):
        raise FileNotFoundError(f'labelled subset list {path!r} does not exist: fix '
                                'labelled_list of PseudoLabelHook (a path, or relative to the '
                                'dataset root).')
    root = dataset.data_prefix.get('img_path', '') if hasattr(dataset, 'data_prefix') else ''
    by_rel = {}
    for i in range(len(dataset)):
        img = dataset.get_data_info(i)['img_path']
        by_rel[osp.relpath(img, root).replace('\\', '/') if root else img] = i
    entries = resolve_subset_list(path, root, images=by_rel,
                                  where=f'the training set ({len(by_rel)} images under {root!r})')
    if not entries:
        raise ValueError(f'labelled subset list {path!r} is empty.')
    return sorted({by_rel[rel] for _, rel, _ in entries})


@HOOKS.register_module()
class PseudoLabelHook(Hook):
    """Train the pseudo-labelling MLP at mid-epoch and epoch end; install it on every rank.

    Args:
        labelled_list: the labelled subset's file list (e.g. ImageNet's 10% list).
        epochs, lr, momentum, weight_decay, batch_size: one training round (reference: 10,
            0.01, 0.9, 1e-4, 256).
        mid_epoch: also train after the middle batch of each epoch (reference: yes).
        seed: base seed of the rounds' batch orders (plus the iteration; a private generator,
            the global RNG is not touched).
    """

    priority = 'NORMAL'  # before CheckpointHook: an epoch-end checkpoint has the new classifier

    def __init__(self, labelled_list: str, epochs: int = 10, lr: float = 0.01,
                 momentum: float = 0.9, weight_decay: float = 1e-4, batch_size: int = 256,
                 mid_epoch: bool = True, seed: int = 0):
        if epochs < 1 or batch_size < 2:
            raise ValueError('PseudoLabelHook needs epochs >= 1 and batch_size >= 2 (BN).')
        self.labelled_list = labelled_list
        self.epochs, self.lr, self.momentum, self.weight_decay = epochs, lr, momentum, weight_decay
        self.batch_size, self.mid_epoch, self.seed = batch_size, mid_epoch, seed
        self.labelled: Optional[torch.Tensor] = None  # (L,) dataset indices
        self.labels: Optional[torch.Tensor] = None  # (L,) their labels
        self.rounds = 0

    @staticmethod
    def _parts(model):
        if not hasattr(model, 'constraint'):
            raise ValueError('PseudoLabelHook needs a CMSF model with '
                             "constrained_selector=dict(type='PseudoLabelSelector').")
        return model.constraint('pseudo_label', user='PseudoLabelHook')

    def set_labelled(self, model, dataset) -> None:
        """Read the list, keep the labelled indices/labels, mark them in the selector."""
        selector, _ = self._parts(model)
        idx = read_labelled_list(self.labelled_list, dataset, getattr(dataset, 'data_root', None))
        labels = [dataset.get_data_info(i).get('gt_label', -1) for i in idx]
        if min(labels) < 0:
            raise ValueError('PseudoLabelHook: the training set has no labels for the listed '
                             'images; use a dataset with with_label=True.')
        if max(labels) >= selector.num_classes:
            raise ValueError(f'label {max(labels)} >= PseudoLabelSelector num_classes='
                             f'{selector.num_classes}: set num_classes to the dataset\'s.')
        self.labelled = torch.tensor(idx, dtype=torch.long)
        self.labels = torch.tensor(labels, dtype=torch.long)
        mask = torch.zeros(len(dataset), dtype=torch.bool)
        mask[self.labelled] = True
        selector.set_labelled(mask)

    def before_run(self, runner) -> None:
        dataset = runner.train_dataloader.dataset
        self.set_labelled(get_ori_model(runner.model), dataset)
        runner.logger.info(f'semi-supervised CMSF: {len(self.labelled)} labelled images '
                           f'({100 * len(self.labelled) / len(dataset):.1f}% of {len(dataset)}) '
                           f'from {self.labelled_list}')

    # ------------------------------------------------------------------ training
    def train_classifier(self, model, seed: Optional[int] = None) -> Dict[str, float]:
        """One training round (rank 0) + broadcast + install; returns its statistics.

        ``seed`` orders the batches (default: the hook's seed + rounds done).
        """
        selector, cache = self._parts(model)
        if self.labelled is None:
            raise RuntimeError('PseudoLabelHook.set_labelled() was not called.')
        device = next(selector.classifier.parameters()).device
        state = selector.classifier.state_dict()
        stats = torch.zeros(3, dtype=torch.float64)  # samples, final train accuracy, loss
        # rank 0 trains; a sharded cache fetches its rows from every rank (a collective)
        want = self.labelled if get_rank() == 0 else self.labelled[:0]
        emb, valid = cache.get(want, device=device)
        if get_rank() == 0:
            x, y = emb[valid], self.labels.to(device)[valid]
            if x.shape[0] >= 2:
                seed = self.seed + self.rounds if seed is None else seed
                state, acc, loss = selector.fit(
                    x, y, epochs=self.epochs, lr=self.lr, momentum=self.momentum,
                    weight_decay=self.weight_decay, batch_size=self.batch_size, seed=seed)
                stats = torch.tensor([x.shape[0], acc, loss], dtype=torch.float64)
        broadcast(stats, src=0)
        if stats[0] < 2:
            return dict(samples=float(stats[0]))  # nothing cached yet: keep the classifier
        state = {k: v.detach().clone() for k, v in state.items()}
        for v in state.values():
            broadcast(v, src=0)
        selector.load_classifier(state)
        self.rounds += 1
        return dict(samples=float(stats[0]), train_acc=float(stats[1]), loss=float(stats[2]))

    def _round(self, runner, when: str) -> None:
        t0 = time.time()
        # seeded by the iteration, so a resumed run trains exactly as the uninterrupted one
        stats = self.train_classifier(get_ori_model(runner.model), seed=self.seed + runner.iter)
        if 'train_acc' not in stats:
            runner.logger.info(f'pseudo-label classifier ({when}): no cached labelled '
                               'embedding yet, not trained')
            return
        runner.logger.info(
            f'pseudo-label classifier ({when}, epoch {runner.epoch + 1}): '
            f'{int(stats["samples"])} labelled embeddings, train accuracy '
            f'{100 * stats["train_acc"]:.1f}%, {time.time() - t0:.1f} s')
        runner.message_hub.update_scalar('train/pseudo_clf_train_acc', stats['train_acc'])

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if self.mid_epoch and batch_idx + 1 == len(runner.train_dataloader) // 2:
            self._round(runner, 'mid-epoch')

    def after_train_epoch(self, runner) -> None:
        self._round(runner, 'epoch end')
