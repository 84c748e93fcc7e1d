"""gradtx's benchmarks: one command, `python -m benchmarks` (see benchmarks/README.md).

cases.py     what is measured: parameter trees, optimizers per library, the bytes a step must move
runners.py   one object per (case, implementation) that owns its buffers and takes steps
measure.py   warmup, interleaved rounds, medians, peak memory
report.py    derived columns (GB/s, ratios), tables, JSON and the chart
__main__.py  the command line
"""
