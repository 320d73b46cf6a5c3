"""The benchmark harness behind `alignloop bench ...` and BENCHMARKS.md: one module per benchmark."""
