"""The worst-case cost per day that README states is what the template's defaults and samconfig.toml allow."""

from __future__ import annotations

from pathlib import Path

import pytest

from cost import WorstDay, stacks, table

ROOT = Path(__file__).resolve().parents[2]


def day(**changes: object) -> WorstDay:
    values: dict[str, object] = {
        "name": "t",
        "architecture": "arm64",
        "memory_mb": 2048,
        "concurrency": 10,
        "reserved": True,
        "timeout_s": 28,
        "rate_per_s": 10,
        "quota_per_day": None,
    }
    values.update(changes)
    return WorstDay(**values)  # type: ignore[arg-type]


def test_compute_is_every_reserved_copy_busy_all_day() -> None:
    # 10 copies x 86,400 s x 2 GB x $0.0000133334 per GB-second
    assert day().compute_usd == pytest.approx(23.04, abs=0.005)
    assert day(architecture="x86_64").compute_usd == pytest.approx(28.80, abs=0.005)


def test_requests_are_bounded_by_the_stage_rate_and_priced_for_lambda_and_the_rest_api() -> None:
    assert day().requests == 864_000
    assert day().requests_usd == pytest.approx(864_000 / 1e6 * 3.70)


def test_an_http_api_prices_its_requests_at_its_own_rate() -> None:
    assert day(api_type="HTTP").requests == 864_000
    assert day(api_type="HTTP").requests_usd == pytest.approx(864_000 / 1e6 * 1.20)


def test_an_api_key_quota_bounds_both_requests_and_compute() -> None:
    quota = day(concurrency=25, rate_per_s=25, quota_per_day=50_000)
    assert quota.requests == 50_000
    # 50,000 requests running the whole 28 s timeout use less than 25 copies busy all day
    assert quota.compute_seconds == 50_000 * 28
    assert quota.total_usd < day(concurrency=25, rate_per_s=25).total_usd


def test_the_template_defaults_cost_at_most_about_26_dollars_a_day() -> None:
    defaults = stacks()[0]
    assert defaults.name == "template defaults"
    assert (defaults.concurrency, defaults.memory_mb, defaults.architecture) == (10, 2048, "arm64")
    assert defaults.total_usd == pytest.approx(26.24, abs=0.005)


def test_readme_states_the_worst_case_the_stack_allows() -> None:
    assert table(stacks()) in (ROOT / "README.md").read_text(), "README 'Cost': paste the output of `make cost`"
