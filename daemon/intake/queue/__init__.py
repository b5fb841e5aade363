"""The queue intake: posed as a BullMQ worker on Redis. ``worker`` (the BullMQ adapter on its
own event loop, ``loop_thread``), ``job`` (job data to a ``QueueJob``), ``held`` (one locked job),
``bounded_json`` (job fields measured before anything parses them), ``lock_recovery`` (a refused
lock renewal looked into), ``redis_client`` (connection and health), ``status`` (``posed status --queue``) and ``intake``
(``QueueIntake``, what the daemon loop talks to). Never imports ``daemon.intake.folder``."""
