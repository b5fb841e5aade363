"""Processing: turning one claimed video into per-frame results and export files in the worker."""
