"""Benchmarks (DESIGN.md section 8); results in bench/results/ and the README."""
