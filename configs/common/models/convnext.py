"""The ConvNeXt-S backbone of every detector here, frozen (the linear probe), and its input."""

from detectron2.config import LazyCall as L

# Importing the package registers our backbone and datasets, so configs built on this one also
# work under detectron2's stock tools/lazyconfig_train_net.py.
from sar_lora_dino.modeling import ConvNeXtBackbone

# res3-res5 (192/384/768 channels at strides 8/16/32); a detector that reads res2 (96 channels,
# stride 4) sets out_features. Variants set finetune ("lora", "full") and the LoRA fields.
backbone = L(ConvNeXtBackbone)(
    arch="convnext_small",
    out_features=["res3", "res4", "res5"],
    finetune="frozen",
)

# DINOv3 and the ImageNet ConvNeXt both expect RGB with ImageNet mean/std (0-255 scale); the
# model's pixel_mean/pixel_std/input_format and the mapper's image_format follow.
PIXEL_MEAN = [123.675, 116.28, 103.53]
PIXEL_STD = [58.395, 57.12, 57.375]
