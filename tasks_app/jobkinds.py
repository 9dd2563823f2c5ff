"""Example job kind on the public API: count the primes below a limit (README "Add your own job kind")."""

from pydantic import Field

from tasks_app.kinds import JobFailed, ProgressRecorder, StrictParams, job_kind


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
