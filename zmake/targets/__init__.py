"""What receives the backups: a pool (`targets.pool`) or a directory of stream files
(`targets.directory`)."""
