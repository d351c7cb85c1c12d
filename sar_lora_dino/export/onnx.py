"""The merged detector as ONNX, through detectron2's TracingAdapter and the TorchScript exporter."""

import contextlib
import json
import sys
from typing import Dict, List, Tuple

import torch
from torch import nn

from ..modeling.lora import LoRALinear
from ..utils.io import atomic_path
from .model import config_to_yaml

__all__ = ["ONNX_OPSET", "ONNX_OUTPUTS", "export_onnx", "input_size"]

ONNX_OPSET = 17
# TracingAdapter flattens a RetinaNet's Instances into its fields (sorted by name) and its
# image size.
ONNX_OUTPUTS = ("boxes", "classes", "scores", "image_size")


def input_size(cfg) -> Tuple[int, int]:
    """(height, width) the config resizes test images to (``dataloader.image_scale`` is w, h)."""
    scale = cfg.dataloader.get("image_scale") if "dataloader" in cfg else None
    if scale is None:
        return 800, 800
    return int(scale[1]), int(scale[0])


@contextlib.contextmanager
def _traceable_topk(model: nn.Module):
    """
    Make the per-level top-k cut of a dense detector survive tracing. detectron2 0.6 computes
    ``min(topk_candidates, number of candidates)`` in Python, so tracing would freeze whichever
    side won on the example image. Here the stock decoding keeps every candidate (a count the
    trace follows) and the top-k cut is a slice of the score-sorted result, which ONNX clamps
    to the candidates present; eager results are unchanged.
    """
    decode = getattr(model, "_decode_per_level_predictions", None)
    if decode is None:
        yield
        return

    def per_level(anchors, pred_scores, pred_deltas, score_thresh, topk_candidates, image_size):
        found = decode(anchors, pred_scores, pred_deltas, score_thresh, sys.maxsize, image_size)
        return found[:topk_candidates]

    model._decode_per_level_predictions = per_level
    try:
        yield
    finally:
        del model._decode_per_level_predictions


def _class_names(cfg) -> List[str]:
    from detectron2.data import MetadataCatalog

    try:
        names = cfg.dataloader.test.dataset.names
        names = names if isinstance(names, str) else names[0]
        return list(MetadataCatalog.get(names).get("thing_classes", []))
    except Exception:  # names only decorate the ONNX metadata
        return []


def export_onnx(cfg, model: nn.Module, path: str) -> List[str]:
    """
    Export a detector without LoRA modules (see :func:`export_merged`) and its config ``cfg``
    (:func:`merged_config`) to ONNX, opset 17, with dynamic height and width. The graph takes
    one ``image`` (3 x H x W float, the model's input format and 0-255 range, already resized as
    the config's test mapper does) and returns ``boxes`` (N x 4, XYXY in that image's pixels),
    ``classes`` (N), ``scores`` (N) and ``image_size`` (2: H, W). It is traced at
    :func:`input_size` and written atomically to ``path``; its ``metadata_props`` hold that
    size, the input format, the class names and the config.

    Returns:
        list[str]: the output names.
    """
    from detectron2.export import TracingAdapter

    if any(isinstance(m, LoRALinear) for m in model.modules()):
        raise ValueError("export_onnx takes the merged model (no LoRALinear); see export_merged")
    model = model.eval().cpu()
    height, width = input_size(cfg)
    generator = torch.Generator().manual_seed(0)
    image = torch.randint(0, 256, (3, height, width), generator=generator).float()
    traceable = TracingAdapter(model, [{"image": image}]).eval()  # created in training mode
    with torch.no_grad():
        outputs = traceable(image)
    if len(outputs) != len(ONNX_OUTPUTS):
        raise ValueError(
            f"expected {len(ONNX_OUTPUTS)} outputs {ONNX_OUTPUTS} from {type(model).__name__}, "
            f"got {len(outputs)}"
        )
    with atomic_path(path) as tmp:
        with torch.no_grad(), _traceable_topk(model):
            torch.onnx.export(
                traceable,
                (image,),
                tmp,
                opset_version=ONNX_OPSET,
                input_names=["image"],
                output_names=list(ONNX_OUTPUTS),
                dynamic_axes={
                    "image": {1: "height", 2: "width"},
                    **{name: {0: "detections"} for name in ONNX_OUTPUTS[:3]},
                },
                dynamo=False,
            )
        props = {
            "input_height": str(height),
            "input_width": str(width),
            "input_format": str(cfg.model.get("input_format", "RGB")),
            "class_names": json.dumps(_class_names(cfg)),
            "outputs": json.dumps(list(ONNX_OUTPUTS)),
            # everything else a user must reproduce (input scaling, thresholds)
            "config": config_to_yaml(cfg),
        }
        _add_metadata(tmp, props)
    return list(ONNX_OUTPUTS)


def _add_metadata(path: str, props: Dict[str, str]) -> None:
    try:
        import onnx
    except ImportError:
        return  # the graph is complete without it; metadata needs the onnx package
    graph = onnx.load(path)
    for key, value in props.items():
        entry = graph.metadata_props.add()
        entry.key, entry.value = key, str(value)
    onnx.save(graph, path)
