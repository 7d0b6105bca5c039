"""A directory of stream files as the backup side (`--to-dir DIR`): chains written,
verified and restored from there."""
