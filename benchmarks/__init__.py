"""Benchmark of the provider's triggers against the closest peers' triggers: ``make bench``.

See :mod:`benchmarks.run` for what is measured and how.
"""
