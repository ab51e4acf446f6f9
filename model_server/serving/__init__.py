"""Serving: decode, detect, crop, classify (batched), annotate; the in-process model behind the contract."""
