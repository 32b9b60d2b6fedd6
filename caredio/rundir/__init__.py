"""The run directory's files: their line types (formats), how they are written (one writer
per file, whole lines, atomic renames) and read back by the tools."""
