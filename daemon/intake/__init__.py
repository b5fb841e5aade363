"""Where jobs come from: the inbox folder, or a BullMQ queue on Redis (issue 15)."""
