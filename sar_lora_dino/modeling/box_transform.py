"""Box delta decoding with the original's two-sided clamp on dw/dh."""

import math
from typing import Tuple

from detectron2.modeling.box_regression import Box2BoxTransform

__all__ = ["TwoSidedClampBox2BoxTransform"]

# exp(-log(1000/16)) = 0.016: the smallest width/height factor the original decodes to.
_SCALE_CLAMP = math.log(1000.0 / 16)


class TwoSidedClampBox2BoxTransform(Box2BoxTransform):
    """
    detectron2's :class:`Box2BoxTransform` with an optional lower clamp on dw/dh.

    The original (MMDetection ``DeltaXYWHBBoxCoder``) clamps dw and dh to
    ``[-log(1000/16), +log(1000/16)]`` before ``exp``; detectron2 only clamps from above,
    so a strongly negative dw decodes to a box far thinner than the original's (for a
    64 px anchor, dw = -6 gives 0.16 px instead of 1.02 px). ``two_sided_clamp=True`` clamps
    dw and dh (divided by their weights) to ``[-scale_clamp, scale_clamp]`` as the original,
    False only from above as detectron2. Encoding (``get_deltas``) is unchanged.
    """

    def __init__(
        self,
        weights: Tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0),
        scale_clamp: float = _SCALE_CLAMP,
        two_sided_clamp: bool = True,
    ):
        super().__init__(weights, scale_clamp=scale_clamp)
        self.two_sided_clamp = two_sided_clamp

    def apply_deltas(self, deltas, boxes):
        """As detectron2's :meth:`Box2BoxTransform.apply_deltas`, after the lower clamp."""
        if self.two_sided_clamp:
            deltas = deltas.float().clone()  # detectron2 decodes in fp32 too
            _, _, ww, wh = self.weights
            deltas[:, 2::4].clamp_(min=-self.scale_clamp * ww)
            deltas[:, 3::4].clamp_(min=-self.scale_clamp * wh)
        return super().apply_deltas(deltas, boxes)


SARBox2BoxTransform = TwoSidedClampBox2BoxTransform  # deprecated alias (saved configs)
