"""Reading a request's images: multipart, JSON or a raw body, as API Gateway delivers them to the function."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from requests_toolbelt import MultipartEncoder

from lambda_vision.errors import ApiError, ErrorCode
from lambda_vision.inputs import ImageInput, read_images

MAX_BODY = 6 * 1024 * 1024
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR fake png"
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF fake jpeg \x00\xff"

Fields = list[tuple[str, Any]]


def read(
    headers: Mapping[str, str] | None,
    body: str | None,
    is_base64_encoded: bool = False,
    *,
    max_body_bytes: int = MAX_BODY,
    max_images: int = 16,
) -> list[ImageInput]:
    return read_images(headers, body, is_base64_encoded, max_body_bytes=max_body_bytes, max_images=max_images)


def refused(
    headers: Mapping[str, str] | None, body: str | None, is_base64_encoded: bool = False, **limits: int
) -> ApiError:
    with pytest.raises(ApiError) as raised:
        read(headers, body, is_base64_encoded, **limits)
    return raised.value


def multipart(fields: Fields) -> tuple[dict[str, str], str]:
    """Headers and base64 body of a multipart/form-data request, as API Gateway passes a binary body."""
    encoder = MultipartEncoder(fields=fields)
    return {"Content-Type": encoder.content_type}, base64.b64encode(encoder.to_string()).decode("ascii")


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def summary(images: list[ImageInput]) -> list[tuple[int, str, bytes | None, str | None]]:
    return [(image.index, image.source, image.data, image.url) for image in images]


JSON = {"Content-Type": "application/json"}


# --- multipart/form-data --------------------------------------------------------------------------------------------


def test_file_and_url_parts_keep_the_order_they_were_sent_in() -> None:
    headers, body = multipart(
        [
            ("image", ("a.png", PNG, "image/png")),
            ("url", "https://example.com/b.jpg"),
            ("image", ("c.jpg", JPEG, "image/jpeg")),
            ("url", "https://example.com/d.png"),
        ]
    )
    assert summary(read(headers, body, True)) == [
        (0, "a.png", PNG, None),
        (1, "https://example.com/b.jpg", None, "https://example.com/b.jpg"),
        (2, "c.jpg", JPEG, None),
        (3, "https://example.com/d.png", None, "https://example.com/d.png"),
    ]


def test_a_urls_field_may_hold_several_urls_separated_by_whitespace() -> None:
    headers, body = multipart([("urls", "https://a.example/1.jpg\nhttps://b.example/2.jpg  \t https://c.example/3")])
    assert [image.url for image in read(headers, body, True)] == [
        "https://a.example/1.jpg",
        "https://b.example/2.jpg",
        "https://c.example/3",
    ]


@pytest.mark.parametrize("name", ["image", "images", "file", "files"])
def test_file_parts_may_be_called_image_images_file_or_files(name: str) -> None:
    headers, body = multipart([(name, ("scan.png", PNG, "image/png"))])
    assert summary(read(headers, body, True)) == [(0, "scan.png", PNG, None)]


def test_any_part_with_a_file_name_is_an_image() -> None:
    headers, body = multipart([("photo", ("holiday.jpg", JPEG, "image/jpeg"))])
    assert summary(read(headers, body, True)) == [(0, "holiday.jpg", JPEG, None)]


def test_an_image_part_without_a_file_name_is_named_after_its_field() -> None:
    headers, body = multipart([("image", PNG.decode("latin-1"))])
    [image] = read(headers, body, True)
    assert image.source == "image"


def test_a_file_name_in_utf8_comes_back_as_sent() -> None:
    headers, body = multipart([("image", ("façade été.png", PNG, "image/png"))])
    assert read(headers, body, True)[0].source == "façade été.png"


def test_an_unknown_text_field_is_refused_and_options_are_pointed_to_the_query_string() -> None:
    headers, body = multipart([("image", ("a.png", PNG, "image/png")), ("model", "layout")])
    error = refused(headers, body, True)
    assert (error.status, error.code) == (HTTPStatus.UNPROCESSABLE_ENTITY, ErrorCode.INVALID_PARAMETER)
    assert error.message == (
        "Unknown form field 'model': send images as `image` file parts and image URLs as `url` fields."
        " Boxes go in a `regions` field after their image; options such as model and top_k go in the query string."
    )


def test_a_multipart_content_type_without_boundary_is_refused() -> None:
    _, body = multipart([("url", "https://example.com/a.png")])
    error = refused({"Content-Type": "multipart/form-data"}, body, True)
    assert (error.status, error.code) == (HTTPStatus.BAD_REQUEST, ErrorCode.INVALID_MULTIPART)
    assert error.message == "The multipart/form-data Content-Type has no boundary parameter."


@pytest.mark.parametrize(
    "body",
    [
        "this is not multipart at all",
        "--xyz\r\nno blank line after the part headers\r\n--xyz--\r\n",
    ],
)
def test_a_body_that_is_not_multipart_is_refused(body: str) -> None:
    error = refused({"Content-Type": "multipart/form-data; boundary=xyz"}, body)
    assert (error.status, error.code) == (HTTPStatus.BAD_REQUEST, ErrorCode.INVALID_MULTIPART)
    assert error.message.startswith("The multipart/form-data body could not be parsed: ")


def test_a_part_without_a_name_is_refused() -> None:
    body = "--xyz\r\nContent-Type: image/png\r\n\r\nabc\r\n--xyz--\r\n"
    error = refused({"Content-Type": "multipart/form-data; boundary=xyz"}, body)
    assert (error.status, error.code) == (HTTPStatus.BAD_REQUEST, ErrorCode.INVALID_MULTIPART)
    assert error.message == "Part 1 of the multipart body has no Content-Disposition name."


@pytest.mark.parametrize("name", ["Content-Type", "content-type", "CONTENT-TYPE", "cOnTeNt-TyPe"])
def test_header_names_are_matched_in_any_case(name: str) -> None:
    headers, body = multipart([("image", ("a.png", PNG, "image/png"))])
    assert summary(read({name: headers["Content-Type"]}, body, True)) == [(0, "a.png", PNG, None)]


def test_the_content_type_value_is_matched_in_any_case() -> None:
    headers, body = multipart([("image", ("a.png", PNG, "image/png"))])
    content_type = headers["Content-Type"].replace("multipart/form-data", "Multipart/Form-Data")
    assert len(read({"Content-Type": content_type}, body, True)) == 1


def test_a_quoted_boundary_is_understood() -> None:
    body = '--a b\r\nContent-Disposition: form-data; name="url"\r\n\r\nhttps://example.com/x.png\r\n--a b--\r\n'
    [image] = read({"Content-Type": 'multipart/form-data; boundary="a b"'}, body)
    assert image.url == "https://example.com/x.png"


URL_PART = 'Content-Disposition: form-data; name="url"\r\n\r\nhttps://example.com/x.png\r\n'


@pytest.mark.parametrize(
    "parameter",
    ["boundary = abc", "boundary =abc", "boundary*=utf-8''abc", "BOUNDARY=abc", 'boundary="abc"; boundary=zzz'],
)
def test_a_boundary_written_in_any_valid_form_is_understood(parameter: str) -> None:
    body = f"--abc\r\n{URL_PART}--abc--\r\n"
    [image] = read({"Content-Type": f"multipart/form-data; {parameter}"}, body)
    assert image.url == "https://example.com/x.png"


@pytest.mark.parametrize(
    "parameter", ["boundary=", 'boundary="a;b"', "boundary*=utf-8''%E2%82%AC", f"boundary={'x' * 71}", 'boundary="a<b"']
)
def test_an_invalid_boundary_is_refused_with_what_a_boundary_may_be(parameter: str) -> None:
    error = refused({"Content-Type": f"multipart/form-data; {parameter}"}, f"--x\r\n{URL_PART}--x--\r\n")
    assert (error.status, error.code) == (HTTPStatus.BAD_REQUEST, ErrorCode.INVALID_MULTIPART)
    assert "boundary" in error.message


def test_a_url_part_that_is_not_utf8_is_refused_with_its_position() -> None:
    body = b'--x\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n\r\nPNG\r\n'
    body += b'--x\r\nContent-Disposition: form-data; name="url"\r\n\r\nhttps://example.com/\xff\xfe.png\r\n--x--\r\n'
    error = refused({"Content-Type": "multipart/form-data; boundary=x"}, b64(body), True)
    assert (error.status, error.code) == (HTTPStatus.BAD_REQUEST, ErrorCode.INVALID_MULTIPART)
    assert error.message.startswith("Part 2 (`url`) is not UTF-8 text")


def test_a_part_header_that_is_not_utf8_is_refused() -> None:
    body = b'--x\r\nContent-Disposition: form-data; name="image"\r\nX-\xff: \xfe\r\n\r\nPNG\r\n--x--\r\n'
    error = refused({"Content-Type": "multipart/form-data; boundary=x"}, b64(body), True)
    assert (error.status, error.code) == (HTTPStatus.BAD_REQUEST, ErrorCode.INVALID_MULTIPART)
    assert error.message.endswith("a header of a part is not UTF-8")


def test_file_inputs_left_empty_in_a_browser_form_are_skipped() -> None:
    headers, body = multipart(
        [
            ("image", ("", b"", "application/octet-stream")),
            ("url", ""),
            ("image", ("a.png", PNG, "image/png")),
            ("image", ("", b"", "application/octet-stream")),
        ]
    )
    assert summary(read(headers, body, True)) == [(0, "a.png", PNG, None)]


def test_a_form_with_nothing_chosen_has_no_images() -> None:
    headers, body = multipart([("image", ("", b"", "application/octet-stream")), ("url", "")])
    error = refused(headers, body, True)
    assert (error.status, error.code) == (HTTPStatus.BAD_REQUEST, ErrorCode.NO_IMAGES)


def test_an_empty_file_that_has_a_name_is_kept_so_that_it_is_reported() -> None:
    headers, body = multipart([("image", ("empty.png", b"", "image/png"))])
    assert summary(read(headers, body, True)) == [(0, "empty.png", b"", None)]


@pytest.mark.parametrize("depth", [1_000, 100_000])
def test_deeply_nested_json_is_refused_as_invalid_json(depth: int) -> None:
    error = refused(JSON, "[" * depth)
    assert (error.status, error.code) == (HTTPStatus.BAD_REQUEST, ErrorCode.INVALID_JSON)
    assert error.message.startswith("The JSON body is nested too deeply")


def test_a_text_body_is_read_as_utf8_when_it_is_not_base64_encoded() -> None:
    encoder = MultipartEncoder(
        fields=[("url", "https://example.com/é.png"), ("image", ("a.txt", "GIF89a", "image/gif"))]
    )
    images = read({"Content-Type": encoder.content_type}, encoder.to_string().decode("utf-8"), False)
    assert summary(images) == [
        (0, "https://example.com/é.png", None, "https://example.com/é.png"),
        (1, "a.txt", b"GIF89a", None),
    ]


# --- isBase64Encoded ------------------------------------------------------------------------------------------------


def test_a_base64_encoded_raw_body_is_decoded() -> None:
    assert summary(read({"Content-Type": "image/png"}, b64(PNG), True)) == [(0, "body", PNG, None)]


def test_a_body_not_marked_base64_is_taken_as_it_is_even_if_it_looks_like_base64() -> None:
    assert summary(read({"Content-Type": "application/octet-stream"}, b64(PNG), False)) == [
        (0, "body", b64(PNG).encode(), None)
    ]


@pytest.mark.parametrize("body", ["not base64!", "aGVsbG8", "aGVs bG8="])
def test_a_body_marked_base64_that_is_not_base64_is_refused(body: str) -> None:
    error = refused({"Content-Type": "image/png"}, body, True)
    assert (error.status, error.code) == (HTTPStatus.BAD_REQUEST, ErrorCode.INVALID_BASE64)
    assert error.message == "The request is marked isBase64Encoded but its body is not valid base64."


def test_a_json_body_marked_base64_is_decoded_before_parsing() -> None:
    document = {"images": [{"url": "https://example.com/a.png"}]}
    [image] = read(JSON, b64(json.dumps(document).encode()), True)
    assert image.url == "https://example.com/a.png"


# --- application/json -----------------------------------------------------------------------------------------------


def test_json_images_by_url_base64_and_data_uri() -> None:
    document = {
        "images": [
            {"url": "https://example.com/a.jpg"},
            {"base64": b64(PNG)},
            {"base64": "data:image/jpeg;base64," + b64(JPEG), "name": "camera.jpg"},
        ]
    }
    assert summary(read(JSON, json.dumps(document))) == [
        (0, "https://example.com/a.jpg", None, "https://example.com/a.jpg"),
        (1, "images[1]", PNG, None),
        (2, "camera.jpg", JPEG, None),
    ]


@pytest.mark.parametrize("content_type", ["application/json; charset=utf-8", "application/vnd.example+json"])
def test_json_with_parameters_or_a_json_suffix_is_json(content_type: str) -> None:
    [image] = read({"Content-Type": content_type}, '{"images": [{"url": "https://example.com/a.png"}]}')
    assert image.url == "https://example.com/a.png"


@pytest.mark.parametrize("body", ["{", "{'images': []}", '{"images": [}'])
def test_invalid_json_is_refused(body: str) -> None:
    error = refused(JSON, body)
    assert (error.status, error.code) == (HTTPStatus.BAD_REQUEST, ErrorCode.INVALID_JSON)
    assert error.message.startswith("The body is not valid JSON: ")


@pytest.mark.parametrize(
    ("document", "location", "message"),
    [
        ([], "body.images", 'The JSON body must be an object {"images": [...]}.'),
        ({"image": []}, "body.images", 'The JSON body must be an object {"images": [...]}.'),
        ({"images": "https://example.com/a.png"}, "body.images", 'The JSON body must be an object {"images": [...]}.'),
        ({"images": ["https://example.com/a.png"]}, "body.images[0]", None),
        ({"images": [{}]}, "body.images[0]", None),
        ({"images": [{"url": "https://a.example/", "base64": "aGk="}]}, "body.images[0]", None),
        ({"images": [{"url": "https://a.example/"}, {"path": "/etc/passwd"}]}, "body.images[1]", None),
        ({"images": [{"url": ""}]}, "body.images[0].url", "body.images[0].url must be a non-empty string."),
        ({"images": [{"url": 5}]}, "body.images[0].url", "body.images[0].url must be a non-empty string."),
        ({"images": [{"base64": None}]}, "body.images[0].base64", "body.images[0].base64 must be a string."),
    ],
)
def test_json_of_the_wrong_shape_says_where(document: Any, location: str, message: str | None) -> None:
    error = refused(JSON, json.dumps(document))
    assert (error.status, error.code) == (HTTPStatus.UNPROCESSABLE_ENTITY, ErrorCode.INVALID_PARAMETER)
    assert error.details == [{"loc": location}]
    assert error.message == (message or f'{location} must be {{"url": "https://..."}} or {{"base64": "..."}}.')


def test_a_json_item_with_bad_base64_says_which_item() -> None:
    document = {"images": [{"base64": b64(PNG)}, {"base64": "this is not base64"}]}
    error = refused(JSON, json.dumps(document))
    assert (error.status, error.code) == (HTTPStatus.BAD_REQUEST, ErrorCode.INVALID_BASE64)
    assert error.message == "body.images[1].base64 is not valid base64."
    assert error.details == [{"loc": "body.images[1].base64"}]


# --- raw bodies and content types -----------------------------------------------------------------------------------


@pytest.mark.parametrize("content_type", ["image/png", "image/jpeg", "image/webp", "application/octet-stream"])
def test_a_raw_image_body_is_one_image(content_type: str) -> None:
    assert summary(read({"Content-Type": content_type}, b64(JPEG), True)) == [(0, "body", JPEG, None)]


@pytest.mark.parametrize(
    ("headers", "shown"),
    [
        ({"Content-Type": "text/plain"}, "text/plain"),
        ({"Content-Type": "application/x-www-form-urlencoded"}, "application/x-www-form-urlencoded"),
        ({}, "none"),
        (None, "none"),
    ],
)
def test_an_unsupported_content_type_lists_the_supported_ones(headers: dict[str, str] | None, shown: str) -> None:
    error = refused(headers, "url=https://example.com/a.png")
    assert (error.status, error.code) == (HTTPStatus.UNSUPPORTED_MEDIA_TYPE, ErrorCode.UNSUPPORTED_MEDIA_TYPE)
    assert error.message == (
        f"Content-Type {shown} is not supported."
        " Send multipart/form-data, application/json, image/* or application/octet-stream."
    )


@pytest.mark.parametrize(
    ("headers", "body"),
    [
        (None, None),
        ({}, ""),
        ({"Content-Type": "image/png"}, ""),
        (JSON, '{"images": []}'),
        ({"Content-Type": "multipart/form-data; boundary=xyz"}, ""),
        ({"Content-Type": "multipart/form-data; boundary=xyz"}, "--xyz--\r\n"),
    ],
)
def test_a_request_without_images_says_how_to_send_them(headers: dict[str, str] | None, body: str | None) -> None:
    error = refused(headers, body)
    assert (error.status, error.code) == (HTTPStatus.BAD_REQUEST, ErrorCode.NO_IMAGES)
    assert error.message.startswith("The request has no image. Send `image` file parts or `url` fields")


# --- limits ---------------------------------------------------------------------------------------------------------


def test_more_images_than_allowed_are_refused_with_the_limit() -> None:
    headers, body = multipart([("urls", " ".join(f"https://example.com/{i}.png" for i in range(3)))])
    assert len(read(headers, body, True, max_images=3)) == 3
    error = refused(headers, body, True, max_images=2)
    assert (error.status, error.code) == (HTTPStatus.UNPROCESSABLE_ENTITY, ErrorCode.TOO_MANY_IMAGES)
    assert error.message == "The request has 3 images; the limit is 2 per request. Split it up."
    assert error.details == {"limit": 2, "received": 3}


def test_a_body_over_the_limit_is_refused_with_the_limit_in_the_message() -> None:
    body = b64(b"x" * 3000)  # 4000 characters
    assert len(read({"Content-Type": "image/png"}, body, True, max_body_bytes=4000)) == 1
    error = refused({"Content-Type": "image/png"}, body, True, max_body_bytes=3999)
    assert (error.status, error.code) == (HTTPStatus.REQUEST_ENTITY_TOO_LARGE, ErrorCode.BODY_TOO_LARGE)
    assert error.message.startswith("The request body is 4,000 bytes as received by the function; the limit is 3,999.")
    assert "about 2,999 bytes of raw image data fit in one request. Send large images by URL." in error.message
    assert error.details == {"limit_bytes": 3999, "received_bytes": 4000}


def test_the_body_size_is_checked_before_anything_is_decoded() -> None:
    error = refused({"Content-Type": "image/png"}, "not base64 " * 100, True, max_body_bytes=100)
    assert error.code is ErrorCode.BODY_TOO_LARGE


# --- property: any sequence of parts comes back in order ------------------------------------------------------------

# Any printable name without surrounding spaces; `"` is left out because clients send it as %22 (HTML5).
file_names = st.text(
    st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp"), blacklist_characters='"'), min_size=1, max_size=24
).filter(lambda name: name == name.strip() and name != "")
urls = st.from_regex(r"https://[a-z0-9-]{1,12}\.example/[A-Za-z0-9/_.%-]{0,30}", fullmatch=True)
parts = st.one_of(
    st.tuples(st.just("image"), file_names, st.binary(max_size=300)),
    st.tuples(st.just("url"), urls, st.none()),
)


@settings(max_examples=150, deadline=None)
@given(sent=st.lists(parts, min_size=1, max_size=12), header_name=st.sampled_from(["Content-Type", "content-type"]))
def test_any_mix_of_file_and_url_parts_round_trips_in_order(
    sent: list[tuple[str, str, bytes | None]], header_name: str
) -> None:
    fields: Fields = [
        (kind, (name, data, "application/octet-stream")) if data is not None else (kind, name)
        for kind, name, data in sent
    ]
    headers, body = multipart(fields)
    images = read({header_name: headers["Content-Type"]}, body, True, max_images=len(sent))
    expected = [
        (index, name, data, None) if data is not None else (index, name, None, name)
        for index, (_, name, data) in enumerate(sent)
    ]
    assert summary(images) == expected
