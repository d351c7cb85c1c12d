"""The resumable train loader hands out the same batches with or without worker processes."""

import uuid

import pytest
import torch
from detectron2.data import transforms as T

from sar_lora_dino.data import (
    ScaledImageDatasetMapper,
    get_sardet_train_dicts,
    make_synthetic_sardet,
    register_sardet100k,
)
from sar_lora_dino.data.transforms import ResizeWH
from sar_lora_dino.engine import build_resumable_train_loader


@pytest.fixture(scope="module")
def dicts(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("loader") / "SARDet_100K")
    make_synthetic_sardet(root, num_train=10, num_val=1, num_test=1, seed=5, sizes=(64, 96))
    names = register_sardet100k(root, prefix="ld_" + uuid.uuid4().hex[:8], splits=["train"])
    return get_sardet_train_dicts(names[0])


def _loader(dicts, num_workers, flip=True):
    # a random flip, so the augmentation draws are part of what must match
    augmentations = [ResizeWH(scale=(80, 64))] + ([T.RandomFlip(prob=0.5)] if flip else [])
    mapper = ScaledImageDatasetMapper(
        is_train=True, augmentations=augmentations, image_format="RGB"
    )
    return build_resumable_train_loader(
        dicts, mapper=mapper, total_batch_size=2, num_workers=num_workers, seed=3
    )


def _take(loader, n):
    batches = []
    for batch in loader:
        batches.append(
            [(d["file_name"], d["image"], d["instances"].gt_boxes.tensor) for d in batch]
        )
        if len(batches) == n:
            return batches


def _assert_same(a, b):
    assert len(a) == len(b)
    for batch_a, batch_b in zip(a, b):
        assert [x[0] for x in batch_a] == [x[0] for x in batch_b]
        for (_, image_a, boxes_a), (_, image_b, boxes_b) in zip(batch_a, batch_b):
            assert torch.equal(image_a, image_b)
            assert torch.equal(boxes_a, boxes_b)


def test_two_workers_give_the_batches_and_flips_of_none_also_after_a_resume(dicts):
    reference = _take(_loader(dicts, 0), 6)
    unflipped = _take(_loader(dicts, 0, flip=False), 6)
    flipped = []
    for batch, plain in zip(reference, unflipped):
        for (name, image, _), (plain_name, plain_image, _) in zip(batch, plain):
            assert name == plain_name
            flipped.append(not torch.equal(image, plain_image))
            assert torch.equal(image, plain_image.flip(2) if flipped[-1] else plain_image)
    assert any(flipped) and not all(flipped)  # the draws matter in what is compared
    _assert_same(_take(_loader(dicts, 2), 6), reference)

    first = _loader(dicts, 2)
    _take(first, 2)
    state = first.state_dict()  # the position after the two batches handed out
    resumed = _loader(dicts, 2)
    resumed.load_state_dict(state)
    _assert_same(_take(resumed, 4), reference[2:])
