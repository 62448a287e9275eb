"""Settings of the job functions, read once from environment variables (names in UPPER_CASE)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from lambda_vision.jobs.locations import LocationPolicy, S3Location, parse_locations
from lambda_vision.registry import Task

RESULTS_PREFIX = "results/"  # under the jobs bucket: results of jobs without an output, and of dropped images
INCOMING_PREFIX = "incoming/"  # under the jobs bucket: images dropped here are processed automatically


@dataclass(frozen=True)
class JobSettings:
    table: str = ""
    work_queue_url: str = ""
    plan_queue_url: str = ""
    jobs_bucket: str = ""
    webhook_secret: str = ""
    webhooks_enabled: bool = False  # a secret to sign with exists (the API is told so without the secret itself)
    input_locations: tuple[S3Location, ...] = ()  # besides the jobs bucket
    output_locations: tuple[S3Location, ...] = ()  # besides the jobs bucket's results/
    chunk_size: int = 8  # images per work message: one ONNX batch
    page_size: int = 1000  # keys listed per planner invocation
    max_input_uris: int = 1000  # a longer list belongs under a prefix
    drop_task: Task = Task.CLASSIFICATION
    retention_days: int = 30  # job records expire (DynamoDB TTL) this long after they were created
    webhook_attempts: int = 5
    webhook_backoff_seconds: float = 1.0

    @property
    def configured(self) -> bool:
        return bool(self.table and self.work_queue_url and self.plan_queue_url and self.jobs_bucket)

    @property
    def policy(self) -> LocationPolicy:
        own = (S3Location(self.jobs_bucket, ""),) if self.jobs_bucket else ()
        results = (S3Location(self.jobs_bucket, RESULTS_PREFIX),) if self.jobs_bucket else ()
        return LocationPolicy(readable=own + self.input_locations, writable=results + self.output_locations)

    @property
    def default_output(self) -> S3Location:
        return S3Location(self.jobs_bucket, RESULTS_PREFIX)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> JobSettings:
        env = os.environ if environ is None else environ
        defaults = cls()

        def integer(name: str, default: int, low: int, high: int) -> int:
            raw = env.get(name, "")
            try:
                value = int(raw) if raw else default
            except ValueError as error:
                raise ValueError(f"setting {name} must be an integer, got {raw!r}") from error
            if not low <= value <= high:
                raise ValueError(f"setting {name} must be between {low} and {high}, got {value}")
            return value

        return cls(
            table=env.get("JOBS_TABLE", ""),
            work_queue_url=env.get("WORK_QUEUE_URL", ""),
            plan_queue_url=env.get("PLAN_QUEUE_URL", ""),
            jobs_bucket=env.get("JOBS_BUCKET", ""),
            webhook_secret=env.get("WEBHOOK_SECRET", ""),
            webhooks_enabled=bool(env.get("WEBHOOK_SECRET")) or env.get("WEBHOOKS_ENABLED", "").lower() == "true",
            input_locations=parse_locations(env.get("JOBS_INPUT_LOCATIONS", "")),
            output_locations=parse_locations(env.get("JOBS_OUTPUT_LOCATIONS", "")),
            chunk_size=integer("JOBS_CHUNK_SIZE", defaults.chunk_size, 1, 64),
            page_size=integer("JOBS_PAGE_SIZE", defaults.page_size, 1, 1000),
            max_input_uris=integer("JOBS_MAX_INPUT_URIS", defaults.max_input_uris, 1, 10_000),
            drop_task=Task(env.get("DROP_TASK") or defaults.drop_task.value),
            retention_days=integer("JOBS_RETENTION_DAYS", defaults.retention_days, 1, 3650),
            webhook_attempts=integer("WEBHOOK_ATTEMPTS", defaults.webhook_attempts, 1, 10),
            webhook_backoff_seconds=float(env.get("WEBHOOK_BACKOFF_SECONDS") or defaults.webhook_backoff_seconds),
        )
