"""Stages that turn per-frame backend output into what is published (motion smoothing, gap filling)."""
