"""What runs leave behind: a send's line and stamp, a backup's summary, JSON, metrics."""
