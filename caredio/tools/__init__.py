"""What users do with a run directory: select, export, hand off to fine-tuning, report, compare."""
