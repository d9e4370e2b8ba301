"""Experiment configs, one file per run: get_config() -> ml_collections.ConfigDict."""
