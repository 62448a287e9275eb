"""The most a day of the deployed stack can cost, from its parameters: the template's defaults and each
environment of samconfig.toml.

Compute is bounded by the reserved concurrency (every copy busy all day) and, with an API key, by the daily
quota (every request running the function's whole timeout); requests by the stage's rate limit and the quota.

    python scripts/cost.py            # markdown table: defaults, then each samconfig.toml environment
"""

from __future__ import annotations

import argparse
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from budget import load_template

ROOT = Path(__file__).resolve().parent.parent
SECONDS_PER_DAY = 86_400
# us-east-1 list prices (USD), as in README "Cost".
PRICE_PER_GB_SECOND = {"arm64": 0.0000133334, "x86_64": 0.0000166667}
LAMBDA_PER_MILLION_REQUESTS = 0.20
REST_API_PER_MILLION_REQUESTS = 3.50
HTTP_API_PER_MILLION_REQUESTS = 1.00  # ApiType=HTTP (the first 300 million a month)
API_PER_MILLION_REQUESTS = {"REST": REST_API_PER_MILLION_REQUESTS, "HTTP": HTTP_API_PER_MILLION_REQUESTS}
# Without a reservation, the function may use the account's whole concurrency (1,000 by default).
ACCOUNT_CONCURRENCY = 1000


@dataclass(frozen=True)
class WorstDay:
    name: str
    architecture: str
    memory_mb: int
    concurrency: int
    reserved: bool
    timeout_s: int
    rate_per_s: int
    quota_per_day: int | None
    api_type: str = "REST"

    @property
    def compute_seconds(self) -> float:
        """Function-seconds in a day: every copy busy, or every quota request running to its timeout."""
        by_concurrency = float(self.concurrency * SECONDS_PER_DAY)
        if self.quota_per_day is None:
            return by_concurrency
        return min(by_concurrency, float(self.quota_per_day * self.timeout_s))

    @property
    def compute_usd(self) -> float:
        return self.compute_seconds * self.memory_mb / 1024 * PRICE_PER_GB_SECOND[self.architecture]

    @property
    def requests(self) -> int:
        """Requests API Gateway passes on in a day (it does not bill those it throttles or refuses itself)."""
        by_rate = self.rate_per_s * SECONDS_PER_DAY
        return by_rate if self.quota_per_day is None else min(by_rate, self.quota_per_day)

    @property
    def requests_usd(self) -> float:
        return self.requests / 1e6 * (LAMBDA_PER_MILLION_REQUESTS + API_PER_MILLION_REQUESTS[self.api_type])

    @property
    def total_usd(self) -> float:
        return self.compute_usd + self.requests_usd


def worst_day(name: str, template: dict[str, Any], overrides: dict[str, str]) -> WorstDay:
    parameters = {key: str(spec.get("Default", "")) for key, spec in template["Parameters"].items()}
    parameters.update(overrides)
    reserved = int(parameters["ReservedConcurrency"])
    return WorstDay(
        name=name,
        architecture=parameters["Architecture"],
        memory_mb=int(parameters["MemorySize"]),
        concurrency=reserved if reserved >= 0 else ACCOUNT_CONCURRENCY,
        reserved=reserved >= 0,
        timeout_s=int(template["Resources"]["InferenceFunction"]["Properties"]["Timeout"]),
        rate_per_s=int(parameters["ThrottlingRateLimit"]),
        quota_per_day=int(parameters["QuotaRequestsPerDay"]) if parameters["ApiKeyRequired"] == "true" else None,
        api_type=parameters["ApiType"],
    )


def stacks(root: Path = ROOT) -> list[WorstDay]:
    """The template's defaults, then each environment of samconfig.toml."""
    template = load_template(root / "template.yaml")
    samconfig = tomllib.loads((root / "samconfig.toml").read_text())
    found = [worst_day("template defaults", template, {})]
    for env, sections in samconfig.items():
        deploy = sections.get("deploy", {}).get("parameters", {}) if isinstance(sections, dict) else {}
        if "parameter_overrides" in deploy:
            overrides = dict(item.split("=", 1) for item in deploy["parameter_overrides"])
            found.append(worst_day(f"samconfig [{env}]", template, overrides))
    return found


def table(days: list[WorstDay]) -> str:
    rows = [
        "| stack | CPU, memory | concurrency | requests/day (limit) | compute/day | requests/day | worst day |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for day in days:
        concurrency = str(day.concurrency) if day.reserved else f"{day.concurrency} (account)"
        limit = f"{day.rate_per_s}/s" + (f", quota {day.quota_per_day:,}" if day.quota_per_day is not None else "")
        rows.append(
            f"| {day.name} | {day.architecture}, {day.memory_mb} MB | {concurrency} | {day.requests:,} ({limit}) "
            f"| ${day.compute_usd:,.2f} | ${day.requests_usd:,.2f} | **${day.total_usd:,.2f}** |"
        )
    return "\n".join(rows)


def main() -> None:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()
    print(table(stacks()))


if __name__ == "__main__":
    main()
