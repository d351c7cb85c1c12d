"""Reading checkpoints of every supported layout into our detectron2 models."""
