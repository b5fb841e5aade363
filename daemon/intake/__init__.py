"""Intake: finding, settling and claiming inputs, so each video is taken by exactly one daemon.

Two intakes, one subpackage each, behind the small interface in ``base``:
``folder/`` (the inbox watcher, mounts, settling, orphan sidecars, ``FolderIntake``) and
``queue/`` (BullMQ on Redis: the worker adapter, job data, status, ``QueueIntake``). The
pieces both may use sit here: ``base``, lock-file claims (``claim``, ``lockfile``,
``stale_locks``, ``liveness``) and the job options and ``job_id`` rules (``sidecar``).
Neither intake imports the other (``tests/test_architecture.py``).

May import: the shared vocabulary (``daemon.errors``, ``config``, ``log``, ``records``,
``paths``, ``clock``), publishing's names, and itself. Never processing or ops: an intake
hands over claimed inputs and is told their outcome, nothing more.
"""
