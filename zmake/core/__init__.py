"""The pure core: parse what zfs says, model it, decide, plan, render, keep and prune
by policy, stream chains. Nothing here starts a process."""
