"""posed: a pose-tracking inbox daemon (videos in, per-frame body pose JSON out)."""

__version__ = "0.1.0"
