"""A training sampler and loader whose position is saved, so a resumed run sees the same data."""

import contextlib
import copy
import logging
import random

import numpy as np
import torch
from detectron2.data.common import DatasetFromList
from detectron2.utils import comm

from .trainer import rng_preserved

__all__ = ["ResumableTrainingSampler", "ResumableTrainLoader", "build_resumable_train_loader"]

logger = logging.getLogger(__name__)


class ResumableTrainingSampler:
    """
    An endless stream of global batches of dataset indices, like detectron2's
    ``TrainingSampler`` + ``AspectRatioGroupedDataset``, but with a state: the same state always
    yields the same future batches.

    Epoch ``e`` is a permutation drawn from ``seed + e`` (or ``0..size-1`` without shuffling).
    With aspect-ratio grouping each index goes to its group's bucket (landscape / other, as
    detectron2 groups) and a full bucket becomes a batch. The state is the epoch, the offset in
    it, the pending buckets and the number of batches drawn. Batches are global (all ranks):
    rank ``r`` of ``n`` takes the ``r``-th slice, so rank 0's state is everyone's.

    Args:
        size (int): dataset length (> 0).
        batch_size (int): images per global batch (all ranks together).
        shuffle (bool): draw a new permutation every epoch.
        seed (int or None): permutation seed; None draws one shared by all ranks.
        group_ids (list[int] or None): aspect-ratio group of each index; None: one group.
    """

    def __init__(self, size, batch_size, shuffle=True, seed=None, group_ids=None):
        if size <= 0:
            raise ValueError("The training dataset is empty: no image to sample.")
        self._size = int(size)
        self.batch_size = int(batch_size)
        self._shuffle = bool(shuffle)
        self.seed = int(comm.shared_random_seed() if seed is None else seed)
        self._group_ids = list(group_ids) if group_ids is not None else [0] * self._size
        self._num_groups = max(self._group_ids) + 1
        self._epoch, self._offset = 0, 0
        self.step = 0  # batches drawn so far
        self._pending = [[] for _ in range(self._num_groups)]
        self._order = None

    def next_batch(self):
        """Returns the next global batch of dataset indices (list[int]); the state advances."""
        while True:
            if self._offset >= self._size:
                self._epoch, self._offset, self._order = self._epoch + 1, 0, None
            if self._order is None:
                self._order = list(range(self._size))
                if self._shuffle:
                    g = torch.Generator()
                    g.manual_seed(self.seed + self._epoch)
                    self._order = torch.randperm(self._size, generator=g).tolist()
            index = self._order[self._offset]
            self._offset += 1
            bucket = self._pending[self._group_ids[index]]
            bucket.append(index)
            if len(bucket) == self.batch_size:
                batch = list(bucket)
                bucket.clear()
                self.step += 1
                return batch

    def state_dict(self):
        """Plain ints and lists (loadable with ``torch.load(weights_only=True)``)."""
        return {
            "size": self._size,
            "batch_size": self.batch_size,
            "seed": self.seed,
            "epoch": self._epoch,
            "offset": self._offset,
            "step": self.step,
            "pending": [list(b) for b in self._pending],
        }

    def load_state_dict(self, state):
        """
        Continue from ``state``. If the dataset or batch size changed since it was saved, the
        old position means nothing: a warning says so and the stream restarts at a new epoch.
        """
        self.seed, self.step = int(state["seed"]), int(state["step"])
        if state["size"] != self._size or state["batch_size"] != self.batch_size:
            logger.warning(
                f"The saved data order was for {state['size']} images in batches of "
                f"{state['batch_size']}; now {self._size} in batches of {self.batch_size}. "
                "The resumed run draws a fresh permutation (not the order it would have seen)."
            )
            self._epoch, self._offset = int(state["epoch"]) + 1, 0
            self._pending = [[] for _ in range(self._num_groups)]
        else:
            self._epoch, self._offset = int(state["epoch"]), int(state["offset"])
            self._pending = [list(b) for b in state["pending"]]
        self._order = None


def _seed_item(seed, step, position):
    """Seed the global RNGs from an item's place in the stream (its augmentation's dice)."""
    value = (seed * 1_000_003 + step * 9_176 + position) % (2**32)
    random.seed(value)
    np.random.seed(value)
    torch.manual_seed(value)


class _MappedStream(torch.utils.data.IterableDataset):
    """This rank's mapped images in stream order; DataLoader workers take every n-th item."""

    def __init__(self, dataset, mapper, sampler, rank, local):
        self._dataset, self._mapper, self._sampler = dataset, mapper, sampler
        self._rank, self._local = rank, local

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        worker, num_workers = (0, 1) if info is None else (info.id, info.num_workers)
        sampler, local = self._sampler, self._local  # the loader's copy (each worker its own)
        item = 0
        while True:
            step = sampler.step
            batch = sampler.next_batch()
            for position in range(self._rank * local, (self._rank + 1) * local):
                if item % num_workers == worker:
                    record = self._dataset[batch[position]]
                    # in this process the seeding must not touch the trainer's random states
                    with rng_preserved() if info is None else contextlib.nullcontext():
                        _seed_item(sampler.seed, step, position)
                        mapped = self._mapper(record)
                    if mapped is None:
                        raise RuntimeError(
                            f"The mapper returned None for '{record.get('file_name')}'; the "
                            "resumable loader needs one output per image."
                        )
                    yield mapped
                item += 1


class ResumableTrainLoader:
    """
    Iterating yields lists of mapped dicts (this rank's share of each global batch), forever.
    :meth:`state_dict` is the position after the batches already handed out (not those prefetched
    by workers), so a checkpoint resumes at the next batch the trainer would have seen.

    Augmentations draw from RNGs seeded by each image's place in the stream, so they are the same
    with any ``num_workers`` (DataLoader processes; 0: map in this process) and after a resume.
    """

    def __init__(self, dataset, mapper, sampler, num_workers=0):
        world_size = comm.get_world_size()
        if sampler.batch_size % world_size:
            raise ValueError(
                f"dataloader.train.total_batch_size={sampler.batch_size} is not divisible by "
                f"the number of processes ({world_size})."
            )
        self._dataset = DatasetFromList(dataset, copy=False)
        self._mapper = mapper
        self.sampler = sampler
        self._num_workers = int(num_workers)
        self._local = sampler.batch_size // world_size
        self._before_last = None  # the position before the last batch handed out

    def __iter__(self):
        stream = _MappedStream(
            self._dataset,
            self._mapper,
            copy.deepcopy(self.sampler),
            comm.get_rank(),
            self._local,
        )
        if self._num_workers == 0:
            items = iter(stream)
        else:
            with rng_preserved():  # creating the workers draws from torch's RNG
                items = iter(
                    torch.utils.data.DataLoader(
                        stream, batch_size=None, num_workers=self._num_workers
                    )
                )
        while True:
            before = self.sampler.state_dict()
            self.sampler.next_batch()
            try:
                batch = [next(items) for _ in range(self._local)]
            except BaseException:
                self.sampler.load_state_dict(before)  # this batch was not handed out
                raise
            self._before_last = before
            yield batch

    def unread_last_batch(self):
        """
        Move the position back before the last batch handed out, so a checkpoint saved now
        resumes with that batch (when the batch was not used: another process failed). The
        running iterator does not rewind; iterate anew to continue.
        """
        if self._before_last is not None:
            self.sampler.load_state_dict(self._before_last)
            self._before_last = None

    def state_dict(self):
        """dict: the sampler position after the batches handed out so far."""
        return self.sampler.state_dict()

    def load_state_dict(self, state):
        """Continue from ``state``; call before iterating."""
        self.sampler.load_state_dict(state)


def build_resumable_train_loader(
    dataset,
    *,
    mapper,
    total_batch_size,
    aspect_ratio_grouping=True,
    num_workers=0,
    shuffle=True,
    seed=None,
):
    """
    detectron2's ``build_detection_train_loader`` (dataset as a list of dicts, batches grouped by
    orientation, w > h or not), with a :class:`ResumableTrainLoader` whose position is part of
    the checkpoint. ``seed`` None: one drawn from the (seeded) global RNG.
    """
    dataset = list(dataset)
    groups = None
    if aspect_ratio_grouping:
        groups = [0 if d.get("width", 0) > d.get("height", 0) else 1 for d in dataset]
    sampler = ResumableTrainingSampler(
        len(dataset), total_batch_size, shuffle=shuffle, seed=seed, group_ids=groups
    )
    return ResumableTrainLoader(dataset, mapper, sampler, num_workers=num_workers)
