"""Large scenes: windows, windowed reading, and merging the detections of overlapping tiles."""

import json
import os

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from sar_lora_dino.data.image_io import has_tifffile
from sar_lora_dino.inference.merge import merge_detections, pairwise_overlap
from sar_lora_dino.inference.runner import run_inference
from sar_lora_dino.inference.scene import SceneReader, has_rasterio, tile_windows


def test_windows_cover_the_scene_and_stay_inside():
    windows = tile_windows(250, 130, 100, 40)
    assert sorted({x for x, _, _, _ in windows}) == [0, 60, 120, 150]
    assert sorted({y for _, y, _, _ in windows}) == [0, 30]
    assert all(w == h == 100 for _, _, w, h in windows)
    assert tile_windows(80, 50, 100, 40) == [(0, 0, 80, 50)]  # smaller than a tile
    with pytest.raises(ValueError, match="overlap"):
        tile_windows(100, 100, 50, 50)


def test_overlap_metrics():
    a = torch.tensor([[0.0, 0, 10, 10]])
    b = torch.tensor([[0.0, 0, 5, 10], [5, 0, 15, 10], [20, 20, 30, 30]])
    np.testing.assert_allclose(pairwise_overlap(a, b, "iou")[0], [0.5, 50 / 150, 0], atol=1e-6)
    np.testing.assert_allclose(pairwise_overlap(a, b, "ios")[0], [1.0, 0.5, 0], atol=1e-6)


def test_merge_on_hand_made_boxes():
    # an object cut by a tile border: the whole box (0.9), its left part seen by the other tile
    # (0.8); a duplicate of another object (IoU 0.81); a same-place box of another class
    boxes = torch.tensor(
        [
            [100.0, 100, 160, 120],
            [100, 100, 130, 120],
            [300, 300, 340, 340],
            [302, 302, 342, 342],
            [100, 100, 130, 120],
        ]
    )
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6, 0.5])
    classes = torch.tensor([0, 0, 1, 1, 2])
    b, s, c = merge_detections(boxes, scores, classes, "greedy_nmm", "ios", 0.5)
    assert b.tolist() == [[100, 100, 160, 120], [300, 300, 342, 342], [100, 100, 130, 120]]
    assert s.tolist() == pytest.approx([0.9, 0.7, 0.5]) and c.tolist() == [0, 1, 2]
    b, s, c = merge_detections(boxes, scores, classes, "nms", "iou", 0.5)
    # the cut part has IoU 0.5 with the whole box: NMS at 0.5 keeps both
    assert len(b) == 4 and b[1].tolist() == [100, 100, 130, 120] and s[1] == pytest.approx(0.8)
    b, _, _ = merge_detections(boxes[:0], scores[:0], classes[:0])
    assert b.shape == (0, 4)


class _BrightBlobDetector:
    """A stand-in detector: one box per bright blob of each window, scored by its area."""

    scaling = "none"
    input_size = None
    weights = "blob detector"

    def __init__(self):
        from detectron2.data import Metadata

        self.metadata = Metadata(name="blobs", thing_classes=["ship"], thing_colors=[[255, 0, 0]])
        self.batches = []

    def __call__(self, images):
        self.batches.append(len(images))
        out = []
        for image in images:
            mask = (image[..., 0] > 128).astype(np.uint8)
            n, _, stats, _ = cv2.connectedComponentsWithStats(mask)
            boxes = [[x, y, x + w, y + h] for x, y, w, h, _ in stats[1:n]]
            boxes = torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4)
            scores = 0.5 + 0.4 * torch.tensor(stats[1:n, 4] / 750.0, dtype=torch.float32)
            out.append((boxes, scores, torch.zeros(len(boxes))))
        return out


def _blob_scene(path):
    scene = np.full((260, 380), 20, np.uint8)
    truth = []
    for x, y in [(85, 10), (140, 45), (20, 150), (200, 92), (330, 200), (260, 230), (45, 85)]:
        scene[y : y + 25, x : x + 30] = 250  # several straddle window borders (60 px steps)
        truth.append([x, y, x + 30, y + 25])
    Image.fromarray(scene).save(path)
    return torch.tensor(truth, dtype=torch.float32)


@pytest.mark.parametrize("merge,metric", [("greedy_nmm", "ios"), ("nms", "iou")])
def test_tiled_scene_recovers_objects_cut_by_tiles(tmp_path, merge, metric):
    truth = _blob_scene(str(tmp_path / "scene.png"))
    detector = _BrightBlobDetector()
    out = str(tmp_path / "out")
    manifest = run_inference(
        detector, [str(tmp_path / "scene.png")], out, tile=100, overlap=40, batch=5,
        merge=merge, match_metric=metric, match_threshold=0.5, picture_size=200,
    )  # fmt: skip
    assert manifest["images"][0]["tiles"] == 6 * 4 and max(detector.batches) == 5
    with open(os.path.join(out, "coco_instances_results.json")) as f:
        boxes = torch.tensor([r["bbox"] for r in json.load(f)])
    boxes[:, 2:] += boxes[:, :2]
    best = pairwise_overlap(truth, boxes, "iou").max(dim=1).values
    if merge == "greedy_nmm":  # every object once, whole
        assert len(boxes) == len(truth) and bool((best > 0.99).all())
    else:  # NMS keeps pieces of cut objects beside the whole ones
        assert len(boxes) > len(truth)
    assert Image.open(os.path.join(out, "scene.png")).size == (190, 130)  # the overview


def _readers():
    backends = ["memory"]
    backends += ["tifffile"] if has_tifffile() else []
    backends += ["rasterio"] if has_rasterio() else []
    return backends


@pytest.mark.parametrize("backend", _readers())
def test_scene_reader_windows_and_bounds(tmp_path, backend):
    rng = np.random.default_rng(0)
    scene = rng.integers(0, 60000, (700, 530), dtype=np.uint16)
    path = str(tmp_path / "scene.tif")
    Image.fromarray(scene).save(path)  # uncompressed, one strip per row block
    with SceneReader(path, backend=backend) as reader:
        assert (reader.width, reader.height, reader.channels) == (530, 700, 1)
        np.testing.assert_array_equal(reader.read(100, 650, 200, 50)[..., 0], scene[650:, 100:300])
        overview, step = reader.overview(200)
        assert step == 4
        np.testing.assert_array_equal(overview[..., 0], scene[::4, ::4])
        assert reader.bounds("minmax") == (float(scene.min()), float(scene.max()))
        low, high = reader.bounds("percentile(2,98)")
        assert (low, high) == pytest.approx(tuple(np.percentile(scene, [2, 98])))
        assert reader.bounds("db(-10,50)") == (-10, 50)


def test_georeferenced_scene_gets_geojson_in_its_crs(tmp_path):
    rasterio = pytest.importorskip("rasterio")
    from rasterio.transform import from_origin

    truth = _blob_scene(str(tmp_path / "plain.png"))
    pixels = np.asarray(Image.open(tmp_path / "plain.png")).astype(np.uint16) * 100
    path = str(tmp_path / "product.tif")
    transform = from_origin(500000.0, 4600000.0, 10.0, 10.0)  # 10 m pixels, UTM 33N
    profile = dict(driver="GTiff", width=380, height=260, count=1, dtype="uint16")
    with rasterio.open(path, "w", crs="EPSG:32633", transform=transform, **profile) as ds:
        ds.write(pixels, 1)
    detector = _BrightBlobDetector()
    detector.scaling = "minmax"
    out = str(tmp_path / "out")
    manifest = run_inference(detector, [path], out, tile=100, overlap=40, batch=4)
    assert manifest["images"][0]["crs"] == "EPSG:32633"
    with open(os.path.join(out, "product.geojson")) as f:
        collection = json.load(f)
    assert collection["crs"]["properties"]["name"] == "EPSG:32633"
    assert len(collection["features"]) == len(truth)
    ring = collection["features"][0]["geometry"]["coordinates"][0]
    x0, y0, x1, y1 = collection["features"][0]["properties"]["bbox_pixels"]
    assert ring[0] == [500000.0 + 10 * x0, 4600000.0 - 10 * y0]
    assert ring[2] == [500000.0 + 10 * x1, 4600000.0 - 10 * y1]
