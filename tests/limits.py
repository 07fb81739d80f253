"""The tests' wall-clock limits, stretched where the tests run at the lowest CPU priority."""

import os


def limit(seconds: float) -> float:
    """`seconds` times REID_TEST_TIME_SCALE (1 unless set). `make test` sets 5: it runs the unit tests at
    the lowest priority beside the chapters, and a chapter's training holds them for up to two minutes.
    A limit is there to end a hung process, not to time one."""
    return seconds * float(os.environ.get("REID_TEST_TIME_SCALE", "1"))
