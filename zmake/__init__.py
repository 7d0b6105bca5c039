"""zmake: parallel, restartable ZFS replication driven by a generated Makefile."""

__version__ = "0.1.0"
