"""Reading a Prometheus text exposition in tests (``GET /metrics``), with prometheus_client's
own parser, so a test asserts what a Prometheus server would read."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

#: A scrape: ``(sample name, sorted (label, value) pairs) → value``.
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    """Every sample of ``text`` (the text format); raises ``ValueError`` on text Prometheus
    could not parse."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float | None:
    """The value of sample ``name`` with exactly ``labels``, or None when the scrape has none."""
    return samples.get((name, tuple(sorted(labels.items()))))


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum of every sample ``name`` whose labels include ``labels`` (0 when none)."""
    wanted = set(labels.items())
    return sum(v for (sample, pairs), v in samples.items() if sample == name and wanted <= set(pairs))
