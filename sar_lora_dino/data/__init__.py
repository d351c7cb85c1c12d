"""SARDet-100K registration, filtering, synthetic data and checks."""
