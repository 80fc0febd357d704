"""The ground floor: infrastructure every layer may use, importing no layer of tether.

errors, config (YAML recipes and ``--set``), options (the CLI option helpers), io (records, JSON, JSONL),
hf_dataset (Hugging Face datasets as records), images, provenance, fingerprints, stats, text.
"""
