"""A contact sheet: a grid of dataset images with their boxes, for a person to look at."""

import numpy as np
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.detection_utils import read_image
from detectron2.utils.visualizer import ColorMode, Visualizer
from PIL import Image

__all__ = ["draw_contact_sheet"]


def draw_contact_sheet(dataset_name, output_file, num_images=6, cols=3, tile=320, seed=0):
    """
    Draw ``num_images`` images of a registered dataset with their boxes and class names
    (detectron2's :class:`Visualizer`, class colours from the metadata) into one PNG.

    Args:
        dataset_name (str): a registered dataset, e.g. "sardet100k_val".
        output_file (str): path of the PNG to write.
        num_images (int): how many images to show; images with boxes are preferred.
        cols (int): images per row.
        tile (int): side of each square tile in pixels (images are scaled to fit).
        seed (int): which images are picked.

    Returns:
        np.ndarray: the sheet as an RGB uint8 array.
    """
    dicts = DatasetCatalog.get(dataset_name)
    metadata = MetadataCatalog.get(dataset_name)
    rng = np.random.default_rng(seed)
    with_boxes = [d for d in dicts if d.get("annotations")]
    pool = with_boxes if len(with_boxes) >= num_images else dicts
    picks = [pool[i] for i in sorted(rng.choice(len(pool), min(num_images, len(pool)), False))]
    rows = max(1, -(-len(picks) // cols))
    sheet = np.full((rows * tile, cols * tile, 3), 255, dtype=np.uint8)
    for i, d in enumerate(picks):
        image = read_image(d["file_name"], format="RGB")
        scale = tile / max(image.shape[:2])
        vis = Visualizer(image, metadata, scale=scale, instance_mode=ColorMode.SEGMENTATION)
        out = vis.draw_dataset_dict(d).get_image()[:tile, :tile]
        r, c = divmod(i, cols)
        sheet[r * tile : r * tile + out.shape[0], c * tile : c * tile + out.shape[1]] = out
    Image.fromarray(sheet).save(output_file)
    return sheet
