"""Thin command-line layer: parses options, calls the library, prints, sets exit codes."""
