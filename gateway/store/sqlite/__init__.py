"""The embedded SQLite store: one file, WAL, one writer thread, parallel readers."""
