"""Helpers shared by the tests and the benchmarks: fixture builders (including zip bombs),
a recording upstream, TLS certificates, Postfix tools and a relay in a child process.

They live outside the `sendguard` package so the relay never ships them; the tests import
them as `tests.support` (pytest puts the repository root on sys.path) and the benchmark
scripts put the root there themselves.
"""
