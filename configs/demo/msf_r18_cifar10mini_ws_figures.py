# The demo pre-training (msf_r18_cifar10mini_ws.py) plus what the paper's figures need:
# every 5 epochs (and at initialisation) the 8 nearest neighbours of 8 fixed query images and the
# embeddings of a fixed pool of 2,000 training images (NeighbourSnapshotHook). Then:
#   python tools/analysis/plot_purity.py WORK_DIR --out purity.png          (Fig. 4)
#   python tools/analysis/plot_neighbours.py WORK_DIR --out neighbours.png  (Fig. 2)
#   python tools/analysis/plot_tsne.py WORK_DIR --out tsne.png              (Table 2, right)
_base_ = './msf_r18_cifar10mini_ws.py'
default_hooks = dict(snapshots=dict(type='NeighbourSnapshotHook', interval=5, pool_size=2000,
                                   num_queries=8, k=8))
