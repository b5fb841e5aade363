"""Operations: what the person on call and systemd see — status file, systemd notify and
watchdog, ``posed doctor`` and its checks.

May import: the shared vocabulary, publishing (atomic writes) and processing (the doctor
probes backends). Never imported by intake, processing or publishing.
"""
