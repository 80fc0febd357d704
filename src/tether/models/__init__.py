"""Loading local Hugging Face vision-language checkpoints behind one adapter interface."""
