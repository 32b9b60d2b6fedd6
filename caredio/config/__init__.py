"""Configuration: settings models, loading them from file, environment and flags, and the
handling of URL secrets."""
