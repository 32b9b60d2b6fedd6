"""What the tests and the benchmarks share: FAKE servers and embedders (each says it is one),
real services started on loopback (Postgres, Chroma server), small job builders, BLEnD-shaped
fixture files and the in-process CLI. Never installed: the runtime package holds no fakes, and
`caredio local-llm` serves the real model only."""
