"""Publishing: the contract with consumers and getting outcomes into the outbox atomically.

Owns the result writers (``results``, ``legacy``), outcome names (``naming``), atomic
publication (``publish``), outcome decisions and input moves (``outcomes``) and schema
validation (``contract``; the schemas themselves are data in ``daemon/schemas/``).

May import: the shared vocabulary and itself. Never intake, processing or ops, so the
contract can be read and tested without a model or a watcher.
"""
