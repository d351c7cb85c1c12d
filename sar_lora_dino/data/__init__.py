"""SARDet-100K registration, filtering, synthetic data and checks."""

from .evaluator import ShiftedIdCOCOEvaluator
from .filtering import get_sardet_train_dicts
from .mapper import ScaledImageDatasetMapper
from .sardet import (
    SARDET100K_CATEGORIES,
    get_sardet100k_root,
    load_sardet_json,
    register_sardet100k,
)
from .synthetic import make_synthetic_sardet

__all__ = [
    "SARDET100K_CATEGORIES",
    "ScaledImageDatasetMapper",
    "ShiftedIdCOCOEvaluator",
    "get_sardet100k_root",
    "get_sardet_train_dicts",
    "load_sardet_json",
    "make_synthetic_sardet",
    "register_sardet100k",
]

# The names before the rename, so that configs saved by earlier runs still load.
SARDatasetMapper = ScaledImageDatasetMapper  # deprecated alias (saved configs)
SARDetCOCOEvaluator = ShiftedIdCOCOEvaluator  # deprecated alias (saved configs)

# Register sardet100k_{train,val,test} under the default root; no file is read here.
register_sardet100k()
