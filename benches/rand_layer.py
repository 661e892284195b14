"""Writes the random 4096 x 4096 problem of `gptq_ref.py --random 4096` (seed 0)
as a layer file (`random.weight`, `random.gram`, `random.count`), so that the
reference's layer mode and `shrink report` run on the very same W and H.

Usage: python benches/rand_layer.py OUT.safetensors [N]
Needs torch and safetensors.
"""
import sys

import torch
from safetensors.torch import save_file

out = sys.argv[1]
n = int(sys.argv[2]) if len(sys.argv) > 2 else 4096
g = torch.Generator().manual_seed(0)
# The same draws, in the same order, as gptq_ref.py's --random mode.
w = torch.randn(n, n, generator=g)
x = torch.randn(2 * n, n, generator=g) @ (torch.eye(n) + 0.1 * torch.randn(n, n, generator=g))
h = x.T @ x
save_file(
    {
        "random.weight": w.contiguous(),
        "random.gram": h.contiguous(),
        "random.count": torch.tensor([2 * n], dtype=torch.int64),
    },
    out,
)
