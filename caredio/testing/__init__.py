"""Test helpers for CAReDiO: fakes that stand in for real services in tests and benchmarks."""
