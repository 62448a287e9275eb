"""GET /: a page to try the API in a browser (one self-contained HTML file, shipped with the function).

Every URL in the page is relative, so it works behind API Gateway's stage prefix and on `make serve` alike.
"""

from __future__ import annotations

from http import HTTPStatus
from pathlib import Path

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router

PAGE_FILE = Path(__file__).resolve().parent / "static" / "index.html"
HTML = "text/html; charset=utf-8"
# The page needs nothing from elsewhere: the browser refuses any script, style, font or call to another origin.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src blob: data:;"
    " connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
PAGE = PAGE_FILE.read_text(encoding="utf-8")

router = Router()  # type: ignore[no-untyped-call]  # Powertools' Router.__init__ is untyped


@router.get(
    "/",
    summary="Try it in a browser",
    description="A page that sends your photos to the API and draws the labels, boxes and landmarks it answers.",
    responses={200: {"description": "The page", "content": {"text/html": {"schema": {"type": "string"}}}}},
    tags=["page"],
)
def page() -> Response[str]:
    # text/html is not one of the API's binary media types: API Gateway passes the page through as text.
    return Response(
        status_code=int(HTTPStatus.OK),
        content_type=HTML,
        body=PAGE,
        headers={
            "Cache-Control": "no-cache",
            "Content-Security-Policy": CONTENT_SECURITY_POLICY,
            "X-Content-Type-Options": "nosniff",
        },
    )
