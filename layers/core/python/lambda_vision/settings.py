"""Limits and options, read once from environment variables at start-up (names in UPPER_CASE)."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Lambda's synchronous payload limit is 6 MB *after* API Gateway's base64 encoding of binary bodies.
LAMBDA_PAYLOAD_LIMIT = 6 * 1024 * 1024


def _split(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


@dataclass(frozen=True)
class Settings:
    models_dir: Path = Path("/opt/models")
    models_config: Path | None = None  # default: models_dir / "models.toml"
    model_cache_dir: Path = Path("/tmp/models")  # noqa: S108 - Lambda's only writable place
    preload_models: bool = True
    max_images_per_request: int = 16
    max_body_bytes: int = LAMBDA_PAYLOAD_LIMIT
    max_image_pixels: int = 40_000_000
    max_request_pixels: int = 160_000_000  # all images of a request together: bounds its memory and time
    max_regions: int = 32  # regions to classify in one request, all images together (each is one crop)
    default_top_k: int = 5
    url_connect_timeout: float = 3.0
    url_read_timeout: float = 10.0
    url_timeout: float = 10.0  # one URL, connection to last byte, redirects included
    answer_time_reserve: float = 4.0  # URL downloads end this long before the function's timeout
    url_max_bytes: int = 10 * 1024 * 1024
    url_max_redirects: int = 3
    url_allowed_hosts: frozenset[str] = frozenset()  # empty: any public host
    url_allowed_networks: tuple[IPNetwork, ...] = ()  # exempt from the public-address rule (development only)
    cors_allow_origin: str = ""  # empty: no CORS headers
    cors_allow_headers: tuple[str, ...] = ("Content-Type", "Authorization", "X-Api-Key")
    cors_max_age: int = 600
    inference_threads: int = 0  # 0: let ONNX Runtime choose
    # ONNX Runtime's idle intra-op threads wait by spinning: a little less latency per operator on a machine
    # with cores to spare, a core's worth of CPU burnt while the function does anything else (session
    # creation, decoding, other threads). Off unless INFERENCE_SPINNING=true.
    inference_spinning: bool = False

    @property
    def models_config_path(self) -> Path:
        return self.models_config or self.models_dir / "models.toml"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        defaults = cls()

        def number(name: str, default: float) -> float:
            raw = env.get(name)
            if raw is None or raw == "":
                return default
            try:
                return float(raw)
            except ValueError as error:
                raise ValueError(f"setting {name} must be a number, got {raw!r}") from error

        return cls(
            models_dir=Path(env.get("MODELS_DIR", str(defaults.models_dir))),
            models_config=Path(env["MODELS_CONFIG"]) if env.get("MODELS_CONFIG") else None,
            model_cache_dir=Path(env.get("MODEL_CACHE_DIR", str(defaults.model_cache_dir))),
            preload_models=env.get("PRELOAD_MODELS", "true").lower() not in {"0", "false", "no"},
            max_images_per_request=int(number("MAX_IMAGES_PER_REQUEST", defaults.max_images_per_request)),
            max_body_bytes=int(number("MAX_BODY_BYTES", defaults.max_body_bytes)),
            max_image_pixels=int(number("MAX_IMAGE_PIXELS", defaults.max_image_pixels)),
            max_request_pixels=int(number("MAX_REQUEST_PIXELS", defaults.max_request_pixels)),
            max_regions=int(number("MAX_REGIONS", defaults.max_regions)),
            default_top_k=int(number("DEFAULT_TOP_K", defaults.default_top_k)),
            url_connect_timeout=number("URL_CONNECT_TIMEOUT", defaults.url_connect_timeout),
            url_read_timeout=number("URL_READ_TIMEOUT", defaults.url_read_timeout),
            url_timeout=number("URL_TIMEOUT", defaults.url_timeout),
            answer_time_reserve=number("ANSWER_TIME_RESERVE", defaults.answer_time_reserve),
            url_max_bytes=int(number("URL_MAX_BYTES", defaults.url_max_bytes)),
            url_max_redirects=int(number("URL_MAX_REDIRECTS", defaults.url_max_redirects)),
            url_allowed_hosts=frozenset(host.lower() for host in _split(env.get("URL_ALLOWED_HOSTS", ""))),
            url_allowed_networks=tuple(
                ipaddress.ip_network(net, strict=False) for net in _split(env.get("URL_ALLOWED_NETWORKS", ""))
            ),
            cors_allow_origin=env.get("CORS_ALLOW_ORIGIN", ""),
            cors_max_age=int(number("CORS_MAX_AGE", defaults.cors_max_age)),
            inference_threads=int(number("INFERENCE_THREADS", defaults.inference_threads)),
            inference_spinning=env.get("INFERENCE_SPINNING", "false").lower() in {"1", "true", "yes"},
        )
