"""The folder intake: videos dropped into the inbox, watched (``inbox``, ``mounts``), settled
(``settle``), claimed with lock files (``daemon.intake.claim``) and handed over by ``FolderIntake``
(``intake``). Never imports ``daemon.intake.queue``."""
