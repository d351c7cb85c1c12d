"""detectron2's "GN" (GroupNorm, 32 groups) as a norm callable that survives a 1-channel probe."""

from torch import nn

__all__ = ["group_norm_32"]


def group_norm_32(num_channels: int) -> nn.GroupNorm:
    """
    ``nn.GroupNorm(32, num_channels)``, what detectron2's ``get_norm("GN", c)`` builds, usable
    as the ``norm`` argument of detectron2's ``RetinaNetHead`` / ``FCOSHead``.

    detectron2 v0.6's ``RetinaNetHead`` (so also ``FCOSHead``) probes its norm once with
    ``get_norm(norm, 1)``; for ``"GN"`` that is ``GroupNorm(32, 1)``, which current torch rejects,
    so the stock ``norm="GN"`` head cannot be built there (detectron2 main probes with 32
    channels). The probe's single channel gets one group here; every real layer gets 32.
    """
    if num_channels == 1:
        return nn.GroupNorm(1, 1)
    if num_channels % 32:
        raise ValueError(f"group_norm_32: {num_channels} channels do not split into 32 groups")
    return nn.GroupNorm(32, num_channels)
