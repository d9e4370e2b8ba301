"""Objectives: pure loss functions of model outputs and batches."""
