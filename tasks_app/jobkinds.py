"""Example job kinds on the public API: count the primes below a limit, in one task (`primes`)
or split into ranges counted in parallel (`primes_split`) (README "Add your own job kind")."""

from pydantic import Field

from tasks_app.kinds import JobFailed, ProgressRecorder, StrictParams, job_kind, split_job_kind


class PrimesParams(StrictParams):
    limit: int = Field(100_000, ge=2, le=20_000_000, description="Count the primes below this number.")
    fail_over: int | None = Field(None, ge=2, description="Fail when a prime above this is found (for demos).")


def below_the_limit(params: PrimesParams) -> str:
    """The summary shown beside the title of the job's card, e.g. "below 100,000"."""
    return f"below {params.limit:,}"


@job_kind("primes", params=PrimesParams, queue="jobs", title="Count primes", summary=below_the_limit)
def count_primes(params: PrimesParams, recorder: ProgressRecorder) -> dict[str, int]:
    """Sieve-free trial division, on purpose slow enough to watch: one progress call per number."""
    found = 0
    for n in range(2, params.limit):
        if all(n % d for d in range(2, int(n**0.5) + 1)):
            found += 1
            if params.fail_over is not None and n > params.fail_over:
                raise JobFailed(f"found the prime {n}, above fail_over={params.fail_over}")
        recorder.set_progress(n + 1, params.limit, f"{found:,} primes below {n + 1:,}")
    return {"limit": params.limit, "primes": found}


class PrimesSplitParams(StrictParams):
    limit: int = Field(1_000_000, ge=2, le=50_000_000, description="Count the primes below this number.")
    parts: int = Field(8, ge=1, le=256, description="Ranges to count in parallel (items).")
    fail_part: int | None = Field(None, ge=0, description="Index of a part that cannot be done (for demos).")
    keep_going: bool = Field(True, description="A part that fails for good is counted, or fails the job.")


def ranges(params: PrimesSplitParams) -> list[list[int]]:
    """The split: ``parts`` ranges ``[start, stop)`` covering 2 … limit, as JSON lists."""
    step = max(1, -(-(params.limit - 2) // params.parts))
    return [[start, min(start + step, params.limit)] for start in range(2, params.limit, step)]


def range_length(item: list[int]) -> int:
    """A range's share of the job's progress: how many numbers it checks."""
    return item[1] - item[0]


def failure_policy(params: PrimesSplitParams) -> str:
    """``on_item_failure`` for this job: count a failed part and go on, or fail the job."""
    return "finish" if params.keep_going else "fail"


def add_up(params: PrimesSplitParams, results: list[int]) -> dict[str, int]:
    """The merge: the ranges' counts added up (only the ranges that succeeded)."""
    return {"limit": params.limit, "primes": sum(results)}


@split_job_kind(
    "primes_split",
    params=PrimesSplitParams,
    split=ranges,
    merge=add_up,
    size=range_length,
    on_item_failure=failure_policy,
    title="Count primes in parallel",
    summary=lambda params: f"below {params.limit:,} in {params.parts} parts",
)
def count_range(params: PrimesSplitParams, item: list[int], recorder: ProgressRecorder) -> int:
    """Count the primes in one range ``[start, stop)``, recording numbers checked."""
    start, stop = item
    if params.fail_part is not None and ranges(params).index(item) == params.fail_part:
        raise JobFailed(f"part {params.fail_part} fails on purpose (fail_part)")
    found = 0
    for n in range(start, stop):
        if all(n % d for d in range(2, int(n**0.5) + 1)):
            found += 1
        recorder.set_progress(n + 1 - start, stop - start, f"{found:,} primes in {start:,}…{n + 1:,}")
    return found
