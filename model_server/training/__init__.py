"""Training and evaluation: data loaders, augmentation, the training loop, metrics (needs torch)."""
