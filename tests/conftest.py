"""Suite-wide test settings: keep torch to one thread so the 2-core CI machine is not oversubscribed."""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

try:
    import torch

    torch.set_num_threads(1)
except ImportError:  # board-only environments
    pass
