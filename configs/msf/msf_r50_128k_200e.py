# MSF w/s with a 128K bank (paper Table 2: 72.1 linear, 62.0 1-NN, 65.2 20-NN).
_base_ = './msf_r50_200e.py'
model = dict(memory_bank=dict(size=128000))
