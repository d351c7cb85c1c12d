"""LoRA r16 fc1+fc2 with detectron2's native RetinaNet semantics instead of the original's.

Same model and parameters (11.569M); only the ten documented behaviours differ (README,
"Fidelity"): P7 ReLU, EMA loss normaliser, argmax low-quality matching, clipping after NMS, ...
"""

from sar_lora_dino.semantics import set_semantics

from .retinanet_dinov3_convnexts_lora_r16_fc1fc2_sardet100k import (
    dataloader,
    lr_multiplier,
    model,
    optimizer,
    train,
)

set_semantics(model, dataloader, "detectron2")
