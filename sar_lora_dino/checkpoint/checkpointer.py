"""A DetectionCheckpointer that also reads DINOv3 backbone files and the original's MMDet ones."""

from typing import Any, Dict, List, Mapping, Tuple

from detectron2.checkpoint import DetectionCheckpointer
from torch import nn

from ..modeling.convnext import ConvNeXtBackbone
from ..modeling.lora import lora_state_dict_keys
from .dinov3 import convert_dinov3_state_dict, detect_dinov3_layout
from .inert_pickle import few_keys, read_checkpoint_file, unwrap_state_dict
from .mmdet import convert_mmdet_state_dict, is_mmdet_state_dict

__all__ = ["MultiFormatCheckpointer", "find_convnext_backbone", "state_dict_mismatch"]

ACCEPTED_FORMATS = (
    "(1) a detectron2 checkpoint (a dict with 'model' whose keys match this model, e.g. one "
    "saved by this project's training or by tools/convert_dinov3_to_d2.py); "
    "(2) a DINOv3 ConvNeXt backbone file in the official, timm or Hugging Face layout "
    "(.pth/.pt/.bin/.safetensors); "
    "(3) a checkpoint of the MMDetection original, as its runner saves it (epoch_12.pth, "
    "best_*.pth) or its state dict; "
    "(4) a detectron2/Caffe2 model-zoo .pkl; "
    "(5) an adapter .safetensors of tools/export_model.py (with its base weights)"
)

_DINOV3_SOURCE = "__dinov3_source__"
_ADAPTER_SOURCE = "__adapter_source__"


def state_dict_mismatch(file_state, model_shapes, expected=None) -> List[str]:
    """
    What keeps the tensors ``file_state`` from fitting a model of ``model_shapes`` (key ->
    shape): one phrase each for shape mismatches, ``expected`` keys (default: every model key)
    missing from the file, and file keys not in the model. Empty when the file fits; entries
    without a shape are compared by key only.
    """
    expected = set(model_shapes) if expected is None else set(expected)
    shapes = [
        f"{k}: file {tuple(file_state[k].shape)} vs model {tuple(model_shapes[k])}"
        for k in set(file_state) & set(model_shapes)
        if hasattr(file_state[k], "shape") and tuple(file_state[k].shape) != tuple(model_shapes[k])
    ]
    problems = (
        ("shape mismatch in", shapes),
        ("missing from the file:", expected - set(file_state)),
        ("not in the model:", set(file_state) - set(model_shapes)),
    )
    return [f"{what} {few_keys(keys)}" for what, keys in problems if keys]


def find_convnext_backbone(model: nn.Module) -> Tuple[str, ConvNeXtBackbone]:
    """
    Returns:
        tuple[str, ConvNeXtBackbone]: the single ConvNeXtBackbone inside ``model`` and its
        state-dict prefix (``"backbone.bottom_up."`` in an FPN model, ``""`` for the backbone).
    """
    found = [(n, m) for n, m in model.named_modules() if isinstance(m, ConvNeXtBackbone)]
    if len(found) != 1:
        raise ValueError(
            f"A DINOv3 backbone file needs a model with exactly one ConvNeXtBackbone; "
            f"{type(model).__name__} has {len(found)}"
        )
    name, backbone = found[0]
    return (name + "." if name else ""), backbone


def _matches(state_dict: Any, model_keys) -> bool:
    if not isinstance(state_dict, Mapping):
        return False
    keys = {k[len("module.") :] if k.startswith("module.") else k for k in state_dict}
    return bool(keys & model_keys)


class MultiFormatCheckpointer(DetectionCheckpointer):
    """
    DetectionCheckpointer for ``train.init_checkpoint``, ``--resume`` and ``--eval-only`` that
    also reads the formats of :data:`ACCEPTED_FORMATS`. DINOv3 backbone files must match the
    backbone exactly (only its LoRA adapters, the FPN and head may be absent); MMDetection keys
    are renamed by :func:`~sar_lora_dino.checkpoint.mmdet.convert_mmdet_state_dict`; an adapter
    loads over its base weights (:func:`~sar_lora_dino.checkpoint.adapter.load_adapter`):
    ``base_checkpoint``, usually ``train.init_checkpoint``, or else the one it records. Torch
    files are read by :func:`~sar_lora_dino.checkpoint.inert_pickle.load_torch_file`, so no
    pickled code runs.
    """

    def __init__(self, model, save_dir="", *, base_checkpoint=None, **kwargs):
        super().__init__(model, save_dir, **kwargs)
        self.base_checkpoint = base_checkpoint

    def _load_file(self, filename: str) -> Dict[str, Any]:
        from .adapter import is_adapter_file  # it imports this module

        if filename.endswith(".pkl"):
            return super()._load_file(filename)
        if is_adapter_file(filename):
            return {_ADAPTER_SOURCE: filename}
        obj = read_checkpoint_file(filename)
        model_keys = set(self.model.state_dict().keys())
        if isinstance(obj, Mapping) and _matches(obj.get("model"), model_keys):
            return dict(obj)
        try:
            state_dict = unwrap_state_dict(obj, filename)
        except ValueError as e:
            raise ValueError(f"{e}. Accepted formats: {ACCEPTED_FORMATS}") from e

        if is_mmdet_state_dict(state_dict):
            self.logger.info(f"{filename}: MMDetection checkpoint, converting key names")
            converted = convert_mmdet_state_dict(state_dict)
            return {"model": converted, "__author__": "MMDetection", "matching_heuristics": False}

        layout = detect_dinov3_layout(state_dict)
        if layout is not None:
            self.logger.info(f"{filename}: DINOv3 ConvNeXt weights in the {layout} layout")
            return {
                "model": convert_dinov3_state_dict(state_dict, layout, source=filename),
                "__author__": f"DINOv3 ({layout} layout)",
                "matching_heuristics": False,
                _DINOV3_SOURCE: filename,
            }
        if _matches(state_dict, model_keys):
            return {"model": state_dict}
        raise ValueError(
            f"{filename}: unrecognised checkpoint; its keys match neither this model nor a "
            f"known layout (first {few_keys(state_dict)}). Accepted formats: {ACCEPTED_FORMATS}"
        )

    def _load_model(self, checkpoint: Dict[str, Any]):
        adapter = checkpoint.pop(_ADAPTER_SOURCE, None)
        if adapter is not None:
            from .adapter import load_adapter

            load_adapter(self.model, adapter, self.base_checkpoint)
            return None  # load_adapter checked every key; there is nothing to report
        source = checkpoint.pop(_DINOV3_SOURCE, None)
        if source is None:
            return super()._load_model(checkpoint)
        prefix, backbone = find_convnext_backbone(self.model)
        # pretrained files have no LoRA adapters; everything else must fit exactly
        lora = lora_state_dict_keys(backbone)
        shapes = {k: v.shape for k, v in backbone.state_dict().items() if k not in lora}
        problems = state_dict_mismatch(checkpoint["model"], shapes)
        if problems:
            raise ValueError(
                f"{source} does not fit ConvNeXtBackbone(arch={backbone.arch!r}): "
                f"{'; '.join(problems)}. Check that the file holds the same ConvNeXt variant."
            )
        checkpoint["model"] = {prefix + k: v for k, v in checkpoint["model"].items()}
        num_loaded = len(checkpoint["model"])
        incompatible = super()._load_model(checkpoint)
        self.logger.info(
            f"Loaded {num_loaded} DINOv3 tensors into '{prefix or '<model>'}'; "
            f"{len(incompatible.missing_keys)} other tensors keep their init"
        )
        # the check above found every backbone tensor; the FPN, head and LoRA adapters keep
        # their initialisation and are not missing
        return incompatible._replace(missing_keys=[])


SARCheckpointer = MultiFormatCheckpointer  # deprecated alias (saved configs)
