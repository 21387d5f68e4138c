"""NumPy's sgemm on one core, for docs/performance.md's "The machine": the best of 20 products
of two 1024x1024 float32 matrices, in GMAC/s.

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 taskset -c 1 python3 bench/numpy_sgemm.py
"""

import time

import numpy as np

n = 1024
rng = np.random.default_rng(0)
a = rng.random((n, n), dtype=np.float32)
b = rng.random((n, n), dtype=np.float32)
a @ b  # warm up
best = float("inf")
for _ in range(20):
    t = time.perf_counter()
    a @ b
    best = min(best, time.perf_counter() - t)
print(f"{n**3 / best / 1e9:.1f} GMAC/s ({best * 1e3:.2f} ms a product), NumPy {np.__version__}")
