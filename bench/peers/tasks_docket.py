"""The Docket side of the benchmark: one no-op task and the collection the worker loads."""


async def noop() -> None:
    return None


tasks = [noop]
