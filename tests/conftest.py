"""Test-wide settings: run-time port checks on, one torch thread, deterministic seeds."""

import os

os.environ.setdefault("BRICKWORK_CHECK", "1")

import torch  # noqa: E402

torch.set_num_threads(1)
