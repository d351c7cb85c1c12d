"""SARDet-100K registration, filtering, synthetic data and checks."""
from .evaluator import SARDetCOCOEvaluator
from .filtering import get_sardet_train_dicts
from .sardet import (
    SARDET100K_CATEGORIES,
    get_sardet100k_root,
    load_sardet_json,
    register_sardet100k,
)
from .synthetic import make_synthetic_sardet

# Register sardet100k_{train,val,test} under the default root; no file is read here.
register_sardet100k()

__all__ = [k for k in globals().keys() if not k.startswith("_")]
