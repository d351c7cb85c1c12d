"""Running a trained detector on image files and whole SAR scenes (tools/infer.py)."""
