"""FPN and its P6/P7 top block with the original's init and P7 input as switches."""

import torch.nn.functional as F
from detectron2.modeling.backbone.fpn import FPN, LastLevelP6P7
from torch import nn

__all__ = ["XavierInitFPN", "NoReLULastLevelP6P7"]

_FPN_INITS = ("xavier_uniform", "c2_xavier")


class NoReLULastLevelP6P7(LastLevelP6P7):
    """
    detectron2's :class:`LastLevelP6P7` (P6 = conv(``in_feature``), "res5" = C5 as the
    original) with P7 = conv(P6), or conv(relu(P6)) with ``relu_before_p7``.

    The original (MMDetection FPN, ``add_extra_convs="on_input"``,
    ``relu_before_extra_convs=False``) feeds P6 to the P7 conv as is; detectron2 applies a
    ReLU first. Parameter names (``p6``, ``p7``) and shapes are detectron2's, so checkpoints
    load either way.
    """

    def __init__(self, in_channels, out_channels, in_feature="res5", relu_before_p7=False):
        super().__init__(in_channels, out_channels, in_feature=in_feature)
        self.relu_before_p7 = relu_before_p7

    def forward(self, x):
        p6 = self.p6(x)
        p7 = self.p7(F.relu(p6) if self.relu_before_p7 else p6)
        return [p6, p7]


class XavierInitFPN(FPN):
    """
    detectron2's :class:`FPN` (same arguments) whose convs can be initialised as in the original.

    ``init="xavier_uniform"`` re-initialises every FPN conv (laterals, outputs, P6, P7) as the
    original does, Xavier-uniform (gain 1) and zero bias; ``"c2_xavier"`` keeps detectron2's
    ``c2_xavier_fill`` (Kaiming-uniform, a=1), whose bound differs on the 1x1 lateral convs
    and on P6.
    """

    def __init__(self, *args, init="xavier_uniform", **kwargs):
        super().__init__(*args, **kwargs)
        if init not in _FPN_INITS:
            raise ValueError(f"XavierInitFPN init must be one of {_FPN_INITS}, got {init!r}")
        self.init = init
        if init == "xavier_uniform":
            # the FPN's own convs (not bottom_up's): laterals and outputs from high to low
            # resolution, then the top block's
            convs = [*self.lateral_convs[::-1], *self.output_convs[::-1]]
            if self.top_block is not None:
                convs += [m for m in self.top_block.modules() if isinstance(m, nn.Conv2d)]
            for conv in convs:
                nn.init.xavier_uniform_(conv.weight)
                if conv.bias is not None:
                    nn.init.zeros_(conv.bias)


SARFPN = XavierInitFPN  # deprecated alias (saved configs)
SARLastLevelP6P7 = NoReLULastLevelP6P7  # deprecated alias (saved configs)
