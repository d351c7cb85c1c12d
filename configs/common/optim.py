"""AdamW as in the original: lr 1e-4, betas (0.9, 0.999), weight decay 0.05 on every trainable tensor."""

import torch
from detectron2.config import LazyCall as L
from detectron2.solver.build import get_default_optimizer_params

# No weight_decay_norm / weight_decay_bias: norms and biases decay like every other parameter.
# Frozen parameters are left out by get_default_optimizer_params.
optimizer = L(torch.optim.AdamW)(
    params=L(get_default_optimizer_params)(),
    lr=1e-4,
    betas=(0.9, 0.999),
    weight_decay=0.05,
)
