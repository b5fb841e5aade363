"""Intake: finding, settling and claiming inputs, so each video is taken by exactly one daemon.

Owns the folder watcher (``inbox``, ``mounts``, ``settle``), lock-file claims (``claim``,
``lockfile``, ``liveness``), job sidecars (``sidecar``) and the ``FolderIntake`` that the
daemon loop talks to through the small interface in ``base``.

May import: the shared vocabulary (``daemon.errors``, ``config``, ``log``, ``records``,
``paths``, ``clock``) and itself. Never processing, publishing or ops: an intake hands over
claimed inputs and is told their outcome, nothing more.
"""
