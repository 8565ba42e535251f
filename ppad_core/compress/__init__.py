"""Compression: task-aware safe pruning (Torch-Pruning dependency graph) and feature distillation."""
