"""What each CLI command does, as plain functions (the CLI only parses arguments and prints)."""
