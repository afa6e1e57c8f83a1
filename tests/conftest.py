import os

import pytest
import torch

# Small VMs run these tiny models much faster on one thread (see lib/runs.py: AVAE_NUM_THREADS).
torch.set_num_threads(int(os.environ.get("AVAE_NUM_THREADS", "1")))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
