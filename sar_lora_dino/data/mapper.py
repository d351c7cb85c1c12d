"""DatasetMapper whose failures on a bad image name the file and its split."""

import os

from detectron2.data import DatasetMapper

__all__ = ["SARDatasetMapper"]


class SARDatasetMapper(DatasetMapper):
    """
    detectron2's :class:`DatasetMapper`, except that an image which cannot be decoded, or whose
    size disagrees with the annotation file, raises an error naming the file and its split
    (the ``JPEGImages/<split>/`` folder it lies in) instead of a bare PIL trace mid-epoch.
    Missing files are caught earlier, when the dataset is registered and first loaded.
    """

    def __call__(self, dataset_dict):
        """
        Args:
            dataset_dict (dict): one record in detectron2's dataset format.

        Returns:
            dict: what :class:`DatasetMapper` returns.
        """
        try:
            return super().__call__(dataset_dict)
        except (OSError, ValueError, SyntaxError) as e:  # PIL raises OSError subclasses
            path = dataset_dict.get("file_name", "<no file_name>")
            split = os.path.basename(os.path.dirname(path))
            raise RuntimeError(
                f"Cannot use image '{path}' (split '{split}', image_id "
                f"{dataset_dict.get('image_id')}): {type(e).__name__}: {e}. Check the file with "
                "datasets/prepare_sardet100k.py."
            ) from e
