"""The built-in demo: two small LoRA files for the tiny SD model and the shipped example workflow."""
