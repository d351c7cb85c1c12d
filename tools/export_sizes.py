#!/usr/bin/env python
"""Measure full checkpoint vs adapter / merged / peft sizes on the real ConvNeXt-S shapes."""

import argparse
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import torch  # noqa: E402
from detectron2.config import instantiate  # noqa: E402

from sar_lora_dino import model_zoo  # noqa: E402
from sar_lora_dino.checkpoint import MultiFormatCheckpointer  # noqa: E402
from sar_lora_dino.checkpoint.checkpointer import find_convnext_backbone  # noqa: E402
from sar_lora_dino.export import export_adapter, export_merged, export_peft  # noqa: E402
from sar_lora_dino.modeling import lora_state_dict_keys  # noqa: E402

CONFIGS = {
    "LoRA r16 fc1+fc2": "sar_lora_dino/retinanet_dinov3_convnexts_lora_r16_fc1fc2_sardet100k.py",
    "linear probe": "sar_lora_dino/retinanet_dinov3_convnexts_linear_sardet100k.py",
}


def _mb(path):
    return f"{os.path.getsize(path) / 1e6:.1f} MB"


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="", help="folder for the files (default: a temporary one)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or tmp
        os.makedirs(out, exist_ok=True)
        base = os.path.join(out, "base_backbone.pth")
        print("| setting | trainable | full checkpoint | adapter | merged | peft (backbone LoRA) |")
        print("| --- | ---: | ---: | ---: | ---: | ---: |")
        for tag, name in CONFIGS.items():
            cfg = model_zoo.get_config(name)
            torch.manual_seed(0)
            model = instantiate(cfg.model).eval()
            if not os.path.exists(base):  # random weights with the real key names and shapes
                _, backbone = find_convnext_backbone(model)
                adapters = lora_state_dict_keys(backbone)
                state = {k: v for k, v in backbone.state_dict().items() if k not in adapters}
                torch.save(state, base)
            cfg.train.init_checkpoint = base
            MultiFormatCheckpointer(model).load(base, checkpointables=[])
            stem = os.path.join(out, tag.split()[0].lower())
            torch.save({"model": model.state_dict()}, stem + "_full.pth")
            export_adapter(cfg, model, stem + "_adapter.safetensors")
            merged = peft = "—"
            if model.backbone.bottom_up.finetune == "lora":
                export_merged(cfg, model, stem + "_merged.pth")
                export_peft(model, stem + "_peft", overwrite=True)
                merged = _mb(stem + "_merged.pth")
                peft = _mb(os.path.join(stem + "_peft", "adapter_model.safetensors"))
            trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
            full, adapter = _mb(stem + "_full.pth"), _mb(stem + "_adapter.safetensors")
            print(f"| {tag} | {trainable:,} | {full} | {adapter} | {merged} | {peft} |", flush=True)
        print(f"base backbone file: {_mb(base)}")


if __name__ == "__main__":
    main()
