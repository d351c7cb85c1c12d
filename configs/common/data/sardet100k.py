"""SARDet-100K data loading: 800x800 resize ignoring aspect ratio, horizontal flip, RGB."""

import detectron2.data.transforms as T
from detectron2.config import LazyCall as L
from detectron2.data import build_detection_test_loader, get_detection_dataset_dicts
from omegaconf import OmegaConf

from sar_lora_dino.data import (
    ScaledImageDatasetMapper,
    ShiftedIdCOCOEvaluator,
    get_sardet_train_dicts,
)
from sar_lora_dino.data.transforms import ResizeWH
from sar_lora_dino.engine.sampler import build_resumable_train_loader

dataloader = OmegaConf.create()

# One place for the input size of training and evaluation: (width, height), as the original's
# Resize(scale=(w, h), keep_ratio=False).
dataloader.image_scale = [800, 800]
# How 16-bit/float images map to the model's 0..255 input, the same in training, evaluation and
# inference (tools/infer.py): "none", "minmax", "percentile(lo,hi)", "db(min_db,max_db)"
# (amplitude, 20*log10) or "db(min_db,max_db,power)" (10*log10); see sar_lora_dino/data/scaling.py.
# 8-bit JPEG/PNG/BMP (what SARDet-100K ships) are never scaled: they are read as detectron2 does.
dataloader.scaling = "none"

# detectron2's build_detection_train_loader arguments; the loader's position is saved in
# checkpoints, so --resume sees the data the run would have seen.
dataloader.train = L(build_resumable_train_loader)(
    dataset=L(get_sardet_train_dicts)(names="sardet100k_train"),
    mapper=L(ScaledImageDatasetMapper)(
        is_train=True,
        augmentations=[
            L(ResizeWH)(scale="${.....image_scale}"),
            L(T.RandomFlip)(horizontal=True, prob=0.5),
        ],
        image_format="RGB",
        scaling="${...scaling}",
    ),
    total_batch_size=16,  # the original: 8 GPUs x 2 images
    num_workers=4,
)

dataloader.test = L(build_detection_test_loader)(
    dataset=L(get_detection_dataset_dicts)(names="sardet100k_val", filter_empty=False),
    mapper=L(ScaledImageDatasetMapper)(
        is_train=False,
        augmentations=[L(ResizeWH)(scale="${.....image_scale}")],
        image_format="${...train.mapper.image_format}",
        scaling="${...scaling}",
    ),
    num_workers=4,
)

# COCOEvaluator that copes with annotation id 0; without detectron2's C++ ops it evaluates with
# faster-coco-eval (identical AP), and use_fast_impl=False selects pycocotools.
dataloader.evaluator = L(ShiftedIdCOCOEvaluator)(dataset_name="${..test.dataset.names}")
