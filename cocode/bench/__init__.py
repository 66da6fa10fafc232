"""`cocode bench ...`: benchmarks that measure cocode against a baseline in the same run."""


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    k = min(len(s) - 1, max(0, round(p / 100 * (len(s) - 1))))
    return s[k]


def cdf_points(values: list[float], most: int = 400) -> list[float]:
    """The sorted values, thinned to at most `most` evenly spaced order statistics
    (the smallest and largest kept): what `bench plot` draws a CDF from, small
    enough to save with every run."""
    s = sorted(v for v in values if v == v)  # NaN has no place on a CDF
    if len(s) > most:
        s = [s[round(i * (len(s) - 1) / (most - 1))] for i in range(most)]
    return [round(v, 2) for v in s]
