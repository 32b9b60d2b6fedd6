"""Where a planned sample is optimized: in this process (local) or on Ray workers (ray), behind
one seam (:class:`caredio.graph.run.SampleExecutor`)."""
