"""Test doubles for third-party stacks that CI does not install (PHALP, 4D-Humans, torch)."""
