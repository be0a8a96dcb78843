"""The RQ side of the benchmark: one no-op function."""


def noop():
    return None
