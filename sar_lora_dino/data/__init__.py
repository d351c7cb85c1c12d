"""SARDet-100K registration, filtering, synthetic data and checks."""

# SARDatasetMapper, SARDetCOCOEvaluator: the names before the rename, for saved configs
from .evaluator import SARDetCOCOEvaluator, ShiftedIdCOCOEvaluator
from .filtering import get_sardet_train_dicts
from .mapper import SARDatasetMapper, ScaledImageDatasetMapper
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

# Register sardet100k_{train,val,test} under the default root; no file is read here.
register_sardet100k()
