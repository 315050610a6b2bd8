"""Expected results (TEST.EXPECTED_RESULTS): parse the entries and check a run's metrics against them."""
import math
from typing import List, Mapping, NamedTuple, Optional, Sequence

from ..utils.errors import ConfigError


class ExpectedMetric(NamedTuple):
    """One TEST.EXPECTED_RESULTS entry: ``metric`` must lie within ``tolerance`` of ``value``."""

    metric: str
    value: float
    tolerance: float


def parse_expected_results(entries: Sequence) -> List[ExpectedMetric]:
    """TEST.EXPECTED_RESULTS as ExpectedMetric tuples; a malformed entry raises ConfigError naming it."""
    expected = []
    for entry in entries:
        well_formed = (isinstance(entry, (list, tuple)) and len(entry) == 3 and isinstance(entry[0], str)
                       and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in entry[1:]))
        if not well_formed or entry[2] < 0:
            raise ConfigError(f"TEST.EXPECTED_RESULTS: entry {entry!r} must be [metric name, value, "
                              f"tolerance >= 0], e.g. [['AP', 0.68, 0.002]]")
        expected.append(ExpectedMetric(entry[0], float(entry[1]), float(entry[2])))
    return expected


def check_expected_results(results: Optional[Mapping[str, float]], expected: Sequence[ExpectedMetric]) -> List[str]:
    """One message per expected metric that is missing, not finite, or further than its tolerance.

    ``results`` None means nothing was evaluated, which fails every expectation.
    """
    if results is None:
        return [f"metric '{metric}' was expected but nothing was evaluated (the split has no annotations "
                f"or RESCORE.GET_DATA is set)" for metric, _, _ in expected]
    failures = []
    for metric, value, tolerance in expected:
        if metric not in results:
            failures.append(f"metric '{metric}' is missing from the results (available: {', '.join(results)})")
        elif not math.isfinite(results[metric]) or abs(results[metric] - value) > tolerance:
            failures.append(f"metric '{metric}' is {results[metric]:.6f}, expected {value} +- {tolerance}")
    return failures
