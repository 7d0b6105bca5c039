"""One module per user command."""
