"""metrics.json records that say which initial weights and which checkpoint they come from."""

import json
import os
from collections import defaultdict

from detectron2.utils.events import JSONWriter, get_event_storage

from sar_lora_dino.utils.io import atomic_write

__all__ = ["ProvenanceJSONWriter"]


class ProvenanceJSONWriter(JSONWriter):
    """
    detectron2's ``JSONWriter`` (one JSON object per line and iteration, appended), with
    ``init_weights`` (a file fingerprint or ``"random"``) in every record and, in the records
    of evaluations, the evaluated ``checkpoint`` and its ``checkpoint_iteration``.

    A resumed run calls :meth:`drop_after` with the iteration it resumes from, so the file holds
    each iteration once: what the stopped run wrote after its last checkpoint is removed.
    """

    def __init__(self, json_file):
        super().__init__(json_file)
        self._path = json_file
        self.provenance = {}
        self.evaluations = {}  # storage iteration -> {"checkpoint": ..., ...}

    def write(self):
        storage = get_event_storage()
        by_iter = defaultdict(dict)
        for key, (value, iteration) in storage.latest_with_smoothing_hint(
            self._window_size
        ).items():
            if iteration > self._last_write:
                by_iter[iteration][key] = value
        if by_iter:
            self._last_write = max(by_iter)
        for iteration in sorted(by_iter):
            record = {"iteration": iteration, **by_iter[iteration], **self.provenance}
            record.update(self.evaluations.pop(iteration, {}))
            self._file_handle.write(json.dumps(record, sort_keys=True) + "\n")
        self._file_handle.flush()
        os.fsync(self._file_handle.fileno())

    def drop_after(self, iteration):
        """
        Remove, rewriting the file atomically, the records of iterations after ``iteration``
        (the resumed checkpoint's) and any line cut short by a kill; return how many.
        """
        self._file_handle.close()
        kept, dropped = [], 0
        with open(self._path) as f:
            for line in f:
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    dropped += 1
                    continue
                if record.get("iteration", -1) > iteration:
                    dropped += 1
                else:
                    kept.append(line if line.endswith("\n") else line + "\n")
        if dropped:
            atomic_write(self._path, lambda f: f.writelines(kept), mode="w")
        self._file_handle = open(self._path, "a")
        return dropped
