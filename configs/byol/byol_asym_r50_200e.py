# BYOL-asym = MSF with k=1 (the only neighbour is the target itself) and s/s views, as the
# paper's baseline (Table 2: 69.3 linear, 55.0 1-NN, 59.2 20-NN). The bank only needs to hold
# the current batch; 1,024 slots keep memory negligible (multiple of the global batch 256).
_base_ = '../msf/msf_ss_r50_200e.py'
model = dict(topk=1, memory_bank=dict(size=1024))
