"""A pool as the backup side: `zfs recv` of each next stream, bookmarks, parents,
restore and content verification."""
