"""Shapes of the job routes, for the OpenAPI document (and so for swagger.yaml and API clients)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from lambda_vision.schemas import Document


class JobParameters(Document):
    top_k: int | None = Field(default=None, ge=1, le=1000, description="Classification: labels per image.")
    threshold: float | None = Field(default=None, ge=0, le=1, description="Detection: minimum score.")
    iou: float | None = Field(default=None, ge=0, le=1, description="Detection: overlap above which NMS drops a box.")
    max_detections: int | None = Field(default=None, ge=1, le=1000, description="Detection: most boxes per image.")


class JobRequest(Document):
    input: str | list[str] = Field(
        description="An s3:// prefix (every object under it), or a list of s3:// object and http(s):// image URIs."
    )
    output: str | None = Field(
        default=None,
        description="s3:// prefix the results are written under (in <job_id>/); the jobs bucket's results/ if omitted.",
    )
    model: str | None = Field(default=None, description="Model name (GET /models); the task's default if omitted.")
    task: Literal["classification", "detection"] | None = Field(
        default=None, description="Which default model to use when no model is named (classification if omitted)."
    )
    parameters: JobParameters | None = None
    webhook: str | None = Field(
        default=None,
        description="URL that receives one POST with the final status document, signed in X-Signature-256.",
    )


class JobAccepted(Document):
    job_id: str
    status: Literal["queued"]
    status_url: str = Field(description="GET it to follow the job.")


class JobCounts(Document):
    total: int = Field(description="Images found so far (final once the input is listed).")
    succeeded: int
    failed: int = Field(description="Images with an error line (undecodable, missing, unreachable, dead-lettered).")
    skipped: int = Field(description="Images not processed because the job was cancelled.")


class WebhookDeliveryDocument(Document):
    id: str = Field(description="The delivery id, sent as X-Webhook-Id on every attempt (the job id).")
    state: Literal["pending", "sending", "delivered", "failed"] = Field(
        description="pending until the job ends; sending while attempts go on; delivered after a 2xx; failed "
        "once WEBHOOK_ATTEMPTS attempts failed or the receiver refused it with a 4xx."
    )
    attempts: int = Field(description="POSTs started so far.")
    status_code: int | None = Field(default=None, description="The receiver's last answer.")
    last_error: str | None = Field(default=None, description="Why the last attempt failed: http_503, url_timeout...")
    delivered_at: str | None = None
    failed_at: str | None = None


class JobStatusDocument(Document):
    job_id: str
    status: Literal["queued", "running", "succeeded", "failed", "cancelled"]
    task: Literal["classification", "detection"]
    model: str
    parameters: dict[str, Any]
    input: Any = Field(description='The input prefix, or {"uris": count} for a list.')
    output: str = Field(description="Where the result lines (part-*.jsonl) and summary.json are written.")
    counts: JobCounts
    created_at: str
    started_at: str | None = None
    finished_at: str | None = None
    error: str | None = None
    webhook: WebhookDeliveryDocument | None = Field(
        default=None, description="The webhook's delivery (jobs with a webhook; never the URL)."
    )
