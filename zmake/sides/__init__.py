"""Where commands run and how: zfs argv builders, the one runner, ssh slots, zfs calls on
a side with stderr turned into typed errors, locks, the interpreter line."""
