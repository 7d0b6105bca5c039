"""The command line: argparse tables, settings from arguments, the table of commands."""
