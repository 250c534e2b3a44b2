"""Benchmarks: socialgate against bare mitmdump, side by side (`make bench`)."""
