"""Backbones, LoRA and the RetinaNet pieces of the original recipe."""
