"""Processing: turning one claimed video into per-frame results inside a supervised worker.

Owns the supervisor and the worker process (``supervisor``, ``worker``, ``protocol``), one
job from probe to finished temp files (``job``), decoding (``media``, ``container``), the
streaming stage runner (``pipeline``) and the pose ``backends``.

May import: the shared vocabulary, ``daemon.publishing`` (the worker writes result files with
the publishing package's writers) and itself. Never intake or ops.
"""
