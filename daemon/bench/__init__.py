"""Measurement: ``posed bench`` (``runner``), its report and plots (``report``), the stock
PHALP loop it compares with (``stock``), and memory sampling (``memory``); shared types in
``types`` so the three never import each other in a circle.

May import: the shared vocabulary, processing and publishing. Nothing imports bench except
the CLI.
"""
