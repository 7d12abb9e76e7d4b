"""Benchmarks and the benchmark corpus generator (``bench.packet_corpus``)."""
