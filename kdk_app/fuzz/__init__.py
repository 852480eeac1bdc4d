"""A seeded fuzzer for a running kdk-app server: ``kdk fuzz URL`` and ``bench/fuzz.py``."""

from .runner import FrameFuzzer, Report, RestFuzzer, fuzz, normal_calls_work

__all__ = ["FrameFuzzer", "Report", "RestFuzzer", "fuzz", "normal_calls_work"]
