"""The decoder of curl's ``-i --raw`` output and the header-block parser of download mode."""

from __future__ import annotations

import gzip
from collections.abc import Callable

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from mesos_uri._http import (
    MAX_GUNZIPPED_BYTES,
    MAX_HEADER_BYTES,
    Headers,
    Response,
    decode_responses,
    status_string,
)
from mesos_uri.errors import DecodeError, FetchError, TruncatedResponseError

FAILED = "Decoding failed"


def fails(data: bytes, message: str = FAILED) -> DecodeError:
    with pytest.raises(DecodeError) as info:
        decode_responses(data)
    assert str(info.value) == message
    assert isinstance(info.value, FetchError)
    return info.value


def one(data: bytes) -> Response:
    responses = decode_responses(data)
    assert len(responses) == 1
    return responses[0]


# --- the original's DecoderTest ------------------------------------------------------------------


def test_decoder_response_with_content_length() -> None:
    data = (
        b"HTTP/1.1 200 OK\r\n"
        b"Date: Fri, 31 Dec 1999 23:59:59 GMT\r\n"
        b"Content-Type: text/plain\r\n"
        b"Content-Length: 2\r\n"
        b"\r\n"
        b"hi"
    )
    response = one(data)
    assert response.code == 200
    assert response.status == "200 OK"
    assert response.body == b"hi"
    assert len(response.headers.fields) == 3
    assert response.headers.get("Content-Type") == "text/plain"
    assert response.headers.get("Date") == "Fri, 31 Dec 1999 23:59:59 GMT"


def test_decoder_response_with_unspecified_length_runs_to_eof() -> None:
    head = (
        b"HTTP/1.1 200 OK\r\n"
        b"Date: Fri, 31 Dec 1999 23:59:59 GMT\r\n"
        b"Content-Type: text/plain\r\n"
        b"\r\n"
    )
    response = one(head + b"hi")
    assert response.status == "200 OK"
    assert response.body == b"hi"
    assert len(response.headers.fields) == 2
    # Without a length only EOF ends the body: more bytes make a longer body, not an error.
    assert one(head + b"hi there").body == b"hi there"


# --- several responses ------------------------------------------------------------------------


def test_several_responses_decode_in_order() -> None:
    data = (
        b"HTTP/1.1 204 No Content\r\n\r\n"
        b"HTTP/1.1 304 Not Modified\r\nETag: x\r\n\r\n"
        b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 3\r\n\r\nno!"
        b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\ndone"
    )
    responses = decode_responses(data)
    assert [r.status for r in responses] == [
        "204 No Content",
        "304 Not Modified",
        "401 Unauthorized",
        "200 OK",
    ]
    assert [r.body for r in responses] == [b"", b"", b"no!", b"done"]


def test_100_continue_then_200() -> None:
    data = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    first, last = decode_responses(data)
    assert (first.code, first.status, first.body) == (100, "100 Continue", b"")
    assert (last.code, last.body) == (200, b"ok")


def test_bodyless_codes_ignore_a_declared_length() -> None:
    # RFC 9112 §6.3 rule 1: 1xx/204/304 end at the blank line; http-parser read the length first
    # and ate the next response. A 304 carrying the representation's length is common.
    data = (
        b"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n"
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    )
    not_modified, ok = decode_responses(data)
    assert not_modified.body == b""
    assert ok.body == b"ok"


def test_blank_lines_between_responses_are_skipped() -> None:
    data = (
        b"\r\nHTTP/1.1 204 No Content\r\n\r\n\r\n\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n\r\n"
    )
    assert [r.code for r in decode_responses(data)] == [204, 200]


# --- framing ----------------------------------------------------------------------------------


def test_chunked_body_with_extensions_and_trailers() -> None:
    data = (
        b"HTTP/1.1 200 OK\r\n"
        b"Transfer-Encoding: Chunked\r\n"
        b"\r\n"
        b"5;name=value\r\nhello\r\n"
        b'1A ; quoted="a;b"\r\n' + b"x" * 26 + b"\r\n"
        b"0;last\r\n"
        b"X-Checksum: abc\r\n"
        b"X-Other: def\r\n"
        b"\r\n"
    )
    response = one(data)
    assert response.body == b"hello" + b"x" * 26
    # Trailers are dropped, and no empty-named field appears as it did in the original.
    assert response.headers.fields == (("Transfer-Encoding", "Chunked"),)


def test_chunked_then_another_response() -> None:
    data = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n0\r\n\r\n"
        b"HTTP/1.1 201 Created\r\nContent-Length: 1\r\n\r\nc"
    )
    assert [r.body for r in decode_responses(data)] == [b"ab", b"c"]


def test_chunked_and_content_length_together_fail() -> None:
    fails(
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n0\r\n\r\n"
    )


def test_transfer_coding_other_than_chunked_fails() -> None:
    # curl --raw hands transfer codings through undecoded; we do not guess at them.
    fails(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n")


@pytest.mark.parametrize("value", ["abc", "-1", "+5", "1.0", "0x10", "", "5, 6", "１"])
def test_malformed_content_length_fails(value: str) -> None:
    fails(f"HTTP/1.1 200 OK\r\nContent-Length: {value}\r\n\r\nhello".encode())


def test_repeated_identical_content_length_is_one_length() -> None:
    # RFC 9110 §8.6: a list of identical values may be taken as that value.
    response = one(b"HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\nContent-Length: 5\r\n\r\nhello")
    assert response.body == b"hello"


def test_repeated_differing_content_length_fails() -> None:
    fails(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 4\r\n\r\nhello")


def test_content_length_takes_exactly_its_bytes() -> None:
    with pytest.raises(DecodeError):
        # Two bytes too many: the rest is not a response.
        decode_responses(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nhello")
    assert one(b"HTTP/1.1 404 Not Found\r\nContent-Length: 5\r\n\r\nhello").body == b"hello"


# --- Content-Encoding -------------------------------------------------------------------------


def test_gzip_body_is_gunzipped() -> None:
    payload = b'{"token": "abc"}' * 100  # over the 127 bytes that aborted the original
    packed = gzip.compress(payload)
    head = f"HTTP/1.1 200 OK\r\nContent-Encoding: GZIP\r\nContent-Length: {len(packed)}\r\n\r\n"
    response = one(head.encode() + packed)
    assert response.body == payload
    # Headers stay as received (the original overwrote Content-Length).
    assert response.headers.get("Content-Length") == str(len(packed))


def test_gzip_with_several_members_and_x_gzip_alias() -> None:
    packed = gzip.compress(b"one ") + gzip.compress(b"two")
    response = one(b"HTTP/1.1 200 OK\r\nContent-Encoding: x-gzip\r\n\r\n" + packed)
    assert response.body == b"one two"


@pytest.mark.parametrize(
    "body",
    [b"not gzip at all", gzip.compress(b"hello")[:-3], gzip.compress(b"a") + b"junk"],
    ids=["garbage", "truncated", "trailing-junk"],
)
def test_bad_gzip_body_fails(body: bytes) -> None:
    fails(b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\n\r\n" + body)


def test_gzip_inflating_beyond_the_limit_fails() -> None:
    bomb = gzip.compress(bytes(MAX_GUNZIPPED_BYTES + 1), compresslevel=1)
    fails(b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\n\r\n" + bomb)


def test_other_content_codings_are_left_alone() -> None:
    response = one(b"HTTP/1.1 200 OK\r\nContent-Encoding: br\r\nContent-Length: 3\r\n\r\nabc")
    assert response.body == b"abc"


# --- header fields ----------------------------------------------------------------------------


def test_repeated_headers_keep_every_field_and_get_returns_the_last() -> None:
    response = one(
        b"HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nX-Other: x\r\n"
        b"set-cookie: b=2\r\nContent-Length: 0\r\n\r\n"
    )
    assert response.headers.get("SET-COOKIE") == "b=2"
    assert response.headers.get_all("Set-Cookie") == ["a=1", "b=2"]
    assert [name for name, _ in response.headers.fields] == [
        "Set-Cookie",
        "X-Other",
        "set-cookie",
        "Content-Length",
    ]
    assert response.headers.get("x-other") == "x"
    assert response.headers.get("Missing") is None


def test_header_value_loses_surrounding_whitespace() -> None:
    # Trailing OWS is stripped too (RFC 9110 §5.5); the original kept it.
    response = one(b"HTTP/1.1 200 OK\r\nX-A: \t padded \t \r\nX-B:tight\r\nX-C:\r\n\r\n")
    assert response.headers.fields == (("X-A", "padded"), ("X-B", "tight"), ("X-C", ""))


def test_obs_fold_continuation_is_appended() -> None:
    response = one(b"HTTP/1.1 200 OK\r\nY: b\r\n c\r\n\t d \r\nZ: e\r\n\r\n")
    assert response.headers.fields == (("Y", "b c d"), ("Z", "e"))


def test_header_bytes_decode_as_latin_1() -> None:
    response = one(b"HTTP/1.1 200 OK\r\nX-Name: caf\xe9 \xff\r\n\r\n")
    assert response.headers.get("x-name") == "café ÿ"


def test_bare_lf_line_endings_are_tolerated() -> None:
    response = one(b"HTTP/1.1 200 OK\nContent-Length: 2\nX: y\n\nhi")
    assert (response.body, response.headers.get("X")) == (b"hi", "y")


@pytest.mark.parametrize(
    "line",
    [
        b"No colon here",
        b"Space Before : colon",
        b"Name : value",
        b": no name",
        b" leading fold before any field",
        b"X: bell\x07",
        b"X: nul\x00",
        b"X: bare\rcr",
        b"X\xe9: non-token name",
    ],
)
def test_malformed_header_line_fails(line: bytes) -> None:
    fails(b"HTTP/1.1 200 OK\r\n" + line + b"\r\nContent-Length: 0\r\n\r\n")


def test_header_section_over_80_kib_fails() -> None:
    status = b"HTTP/1.1 200 OK\r\n"
    end = b"\r\n"
    filler_len = MAX_HEADER_BYTES - len(status) - len(end) - len(b"X: \r\n")
    at_limit = status + b"X: " + b"a" * filler_len + b"\r\n" + end
    assert len(at_limit) == MAX_HEADER_BYTES
    assert one(at_limit).headers.get("X") == "a" * filler_len
    over = status + b"X: " + b"a" * (filler_len + 1) + b"\r\n" + end
    fails(over)


# --- status lines -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "code", "status"),
    [
        (b"HTTP/1.1 429 Too Many Requests", 429, "429 Too Many Requests"),
        (b"HTTP/1.1 308 Permanent Redirect", 308, "308 Permanent Redirect"),
        (b"HTTP/1.1 418 I'm a teapot", 418, "418 I'm a teapot"),
        (b"HTTP/1.1 422 Unprocessable Entity", 422, "422 Unprocessable Content"),
        (b"HTTP/1.1 451 Unavailable For Legal Reasons", 451, "451 Unavailable For Legal Reasons"),
        # The table's text wins over the server's phrase, as in the original.
        (b"HTTP/1.0 200 Fine", 200, "200 OK"),
        (b"HTTP/1.1 408 Request Timeout", 408, "408 Request Time-out"),
        (b"HTTP/1.1 404", 404, "404 Not Found"),
        # A code outside every table keeps the server's phrase, or stands alone.
        (b"HTTP/1.1 599 Network Read Timeout", 599, "599 Network Read Timeout"),
        (b"HTTP/1.1 599", 599, "599"),
        (b"HTTP/1.1 599 ", 599, "599"),
        (b"HTTP/1.1 299 caf\xe9", 299, "299 café"),
    ],
)
def test_any_three_digit_code_decodes(line: bytes, code: int, status: str) -> None:
    response = one(line + b"\r\nContent-Length: 0\r\n\r\n")
    assert (response.code, response.status) == (code, status)


def test_status_string_matches_the_decoder() -> None:
    assert status_string(401) == "401 Unauthorized"
    assert status_string(429) == "429 Too Many Requests"
    assert status_string(599) == "599"
    assert status_string(599, "Custom") == "599 Custom"
    assert status_string(200, "Whatever") == "200 OK"


@pytest.mark.parametrize(
    "line",
    [
        b"HTTP/1.1 20 OK",
        b"HTTP/1.1 2000 OK",
        b"HTTP/1.1  200 OK",
        b"HTTP/1.1 abc OK",
        b"HTTP/11 200 OK",
        b"HTTP/1.1200 OK",
        b"http/1.1 200 OK",
        b"ICY 200 OK",
        b"GET / HTTP/1.1",
        b"HTTP/1.1 200 O\x01K",
    ],
)
def test_malformed_status_line_fails(line: bytes) -> None:
    fails(line + b"\r\nContent-Length: 0\r\n\r\n")


def test_http2_status_line_decodes() -> None:
    # What curl prints when HTTP/2 was negotiated (no --http1.1): lower-case names, no minor.
    response = one(b"HTTP/2 200 \r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}")
    assert (response.status, response.headers.get("Content-Type"), response.body) == (
        "200 OK",
        "application/json",
        b"{}",
    )


# --- what curl -L -i prints -------------------------------------------------------------------


@pytest.mark.parametrize("code", [301, 302, 303, 307, 308])
def test_followed_redirect_with_content_length_has_no_printed_body(code: int) -> None:
    # curl -L -i prints a followed 3xx's header block but not its body : the
    # original ate 9 bytes of the next response here.
    data = (
        f"HTTP/1.1 {code} Moved\r\nLocation: https://cdn.example/blob\r\n"
        "Content-Length: 9\r\nContent-Type: text/html\r\n\r\n"
        "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nblob"
    ).encode()
    redirect, final = decode_responses(data)
    assert (redirect.code, redirect.body) == (code, b"")
    assert redirect.headers.get("Location") == "https://cdn.example/blob"
    assert (final.status, final.body) == ("200 OK", b"blob")


def test_followed_redirect_with_chunked_body_has_no_printed_body() -> None:
    data = (
        b"HTTP/1.1 307 Temporary Redirect\r\nLocation: /elsewhere\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
        b"HTTP/1.1 302 Found\r\nLocation: /again\r\nContent-Length: 20\r\n\r\n"
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nend\r\n0\r\n\r\n"
    )
    assert [(r.code, r.body) for r in decode_responses(data)] == [
        (307, b""),
        (302, b""),
        (200, b"end"),
    ]


def test_unfollowed_redirect_keeps_its_body() -> None:
    # The final 3xx (curl stopped following): its body was printed and belongs to it.
    response = one(b"HTTP/1.1 302 Found\r\nLocation: /x\r\nContent-Length: 5\r\n\r\nmoved")
    assert response.body == b"moved"


def test_redirect_without_location_is_framed_by_its_length() -> None:
    # curl only follows a 3xx with a Location; without one this is a final response whose
    # truncated body must not pass.
    fails(b"HTTP/1.1 301 Moved\r\nContent-Length: 5\r\n\r\nHTTP/1.1 200 OK\r\n\r\n")


def test_proxy_connect_block_has_no_body() -> None:
    # A proxy's answer to CONNECT is recognised by its structure, with no https_proxy in sight.
    data = (
        b"HTTP/1.1 200 Connection established\r\nProxy-agent: tinyproxy/1.11.1\r\n\r\n"
        b'HTTP/1.1 401 Unauthorized\r\nWww-Authenticate: Bearer realm="r"\r\n'
        b"Content-Length: 2\r\n\r\n{}"
    )
    connect, final = decode_responses(data)
    assert (connect.status, connect.body) == ("200 OK", b"")
    assert connect.headers.get("Proxy-Agent") == "tinyproxy/1.11.1"
    assert (final.code, final.body, final.headers.get("WWW-Authenticate")) == (
        401,
        b"{}",
        'Bearer realm="r"',
    )


def test_proxy_connect_then_redirect_then_final() -> None:
    data = (
        b"HTTP/1.0 200 Connection established\r\n\r\n"
        b"HTTP/1.1 307 Temporary Redirect\r\nLocation: https://s3/blob\r\n"
        b"Content-Length: 50\r\n\r\n"
        b"HTTP/1.0 200 Connection established\r\n\r\n"
        b"HTTP/1.1 200 OK\r\n\r\nthe blob"
    )
    assert [(r.code, r.body) for r in decode_responses(data)] == [
        (200, b""),
        (307, b""),
        (200, b""),
        (200, b"the blob"),
    ]


def test_final_length_less_200_is_not_re_parsed() -> None:
    # The original re-decoded such a body when https_proxy was set; we take it to EOF.
    response = one(b"HTTP/1.1 200 OK\r\n\r\nnot a response\r\n\r\n")
    assert response.body == b"not a response\r\n\r\n"


# --- truncation and junk ----------------------------------------------------------------------


COMPLETE = b"HTTP/1.1 204 No Content\r\n\r\n"


@pytest.mark.parametrize(
    "tail",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhel",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-T: 1\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r",
        b"HTTP/1.1 200 OK",
        b"HTT",
    ],
)
def test_truncated_response_fails_even_after_complete_ones(tail: bytes) -> None:
    fails(tail)
    fails(COMPLETE + tail)


@pytest.mark.parametrize(
    "chunks",
    [b"5\r\nhelloX\r\n0\r\n\r\n", b"g\r\nhello\r\n0\r\n\r\n", b"\r\nhello\r\n0\r\n\r\n"],
    ids=["no-crlf-after-data", "bad-size", "empty-size"],
)
def test_malformed_chunk_stream_fails(chunks: bytes) -> None:
    fails(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks)


def test_junk_after_the_last_response_fails() -> None:
    fails(COMPLETE + b"garbage\r\n")


@pytest.mark.parametrize("data", [b"", b"\r\n", b"\n\n\r\n"])
def test_no_response_decoded(data: bytes) -> None:
    fails(data, "No response decoded")


# --- a header block and where it ends ---------------------------------------------------------


def test_the_header_block_ends_at_its_blank_line() -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 23\r\nDocker-Content-Digest: sha256:ab\r\n\r\n"
    assert decode_responses(head + b"first bytes of the body") == [
        Response(
            200,
            "200 OK",
            Headers((("Content-Length", "23"), ("Docker-Content-Digest", "sha256:ab"))),
            b"first bytes of the body",
        )
    ]


def test_an_incomplete_header_block_is_a_truncated_response() -> None:
    head = b"HTTP/1.1 307 Temporary Redirect\r\nLocation: /x\r\n\r\n"
    for end in range(1, len(head)):
        with pytest.raises(TruncatedResponseError, match=FAILED):
            decode_responses(head[:end])
    assert one(head).code == 307


def test_an_http2_block_decodes() -> None:
    response = one(b"HTTP/2 404 \r\ncontent-type: application/json\r\n\r\n{")
    assert (response.status, response.headers.get("Content-Type")) == (
        "404 Not Found",
        "application/json",
    )


def test_a_100_continue_block_comes_before_the_final_one() -> None:
    data = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    assert [(r.code, r.body) for r in decode_responses(data)] == [(100, b""), (200, b"ok")]


@pytest.mark.parametrize(
    "data",
    [b"garbage", b"HTTP/1.1 2x0 OK\r\n", b"HTTP/1.1 200 OK\r\nbad header\r\n", b"<html>"],
)
def test_malformed_input_fails_as_garbled_not_truncated(data: bytes) -> None:
    assert type(fails(data)) is DecodeError


@pytest.mark.parametrize(
    "data",
    [
        b"HTTP/1.1 200 OK\r\n" + b"X: y\r\n" * (MAX_HEADER_BYTES // 6 + 1),
        b"HTTP/1.1 200 OK\r\nX: " + b"y" * MAX_HEADER_BYTES,
        b"\r\n" * (MAX_HEADER_BYTES // 2 + 1),
    ],
    ids=["many-fields", "endless-line", "blank-lines"],
)
def test_an_endless_header_section_fails_as_garbled_not_truncated(data: bytes) -> None:
    with pytest.raises(DecodeError) as info:
        decode_responses(data)
    assert type(info.value) is DecodeError


# --- properties -------------------------------------------------------------------------------

_TCHAR = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
_FRAMING_NAMES = {"content-length", "transfer-encoding", "content-encoding"}
_BODYLESS = st.sampled_from([100, 102, 103, 204, 304])
_CODES = st.one_of(st.integers(200, 999).filter(lambda c: c not in (204, 304)), _BODYLESS)
_TEXT = st.characters(codec="latin-1", exclude_categories=["Cc"], exclude_characters="\x7f")
_OWS = st.text(" \t", max_size=2)

names = st.text(_TCHAR, min_size=1, max_size=12).filter(lambda n: n.lower() not in _FRAMING_NAMES)
values = st.text(_TEXT | st.just("\t"), max_size=20).map(lambda v: v.strip(" \t"))
bodies = st.binary(max_size=200).filter(lambda b: not b.startswith(b"HTTP/"))


@st.composite
def encoded_response(draw: st.DrawFn, *, allow_eof: bool) -> tuple[Response, bytes]:
    """A response and its bytes as a server would frame them (to EOF only if ``allow_eof``)."""
    code = draw(_CODES)
    eol = draw(st.sampled_from([b"\r\n", b"\n"]))
    reason = draw(st.none() | st.text(_TEXT, max_size=15))
    status_line = f"HTTP/1.{draw(st.sampled_from('01'))} {code}"
    if reason is not None:
        status_line += f" {reason}"
    fields = draw(st.lists(st.tuples(names, values), max_size=5))
    lines = [f"{n}:{draw(_OWS)}{v}{draw(_OWS)}" for n, v in fields]
    bodyless = 100 <= code < 200 or code in (204, 304)
    framing = "none" if bodyless else draw(st.sampled_from(["length", "chunked", "eof"]))
    if framing == "eof" and not allow_eof:
        framing = draw(st.sampled_from(["length", "chunked"]))
    body = b"" if bodyless else draw(bodies)
    payload = body
    if framing == "length":
        fields.append(("Content-Length", str(len(body))))
    elif framing == "chunked":
        fields.append(("Transfer-Encoding", draw(st.sampled_from(["chunked", "Chunked"]))))
        payload = _chunked(draw, body, eol)
    if framing in ("length", "chunked"):
        at = draw(st.integers(0, len(lines)))
        lines.insert(at, f"{fields[-1][0]}: {fields[-1][1]}")
        fields.insert(at, fields.pop())
    head = b"".join(field.encode("latin-1") + eol for field in lines)
    data = status_line.encode("latin-1") + eol + head + eol + payload
    return Response(code, status_string(code, reason), Headers(tuple(fields)), body), data


def _chunked(draw: st.DrawFn, body: bytes, eol: bytes) -> bytes:
    out = b""
    rest = body
    while rest:
        size = draw(st.integers(1, len(rest)))
        hex_size = draw(st.sampled_from([f"{size:x}", f"{size:X}", f"00{size:x}"]))
        ext = draw(st.sampled_from(["", ";a=b", ' ; q="x;y"']))
        out += f"{hex_size}{ext}".encode() + eol + rest[:size] + eol
        rest = rest[size:]
    trailers = draw(st.lists(st.tuples(names, values), max_size=2))
    out += b"0" + eol
    out += b"".join(f"{n}: {v}".encode("latin-1") + eol for n, v in trailers)
    return out + eol


@st.composite
def streams(draw: st.DrawFn, *, allow_eof: bool) -> tuple[list[Response], bytes, list[int]]:
    """Responses, their concatenated bytes, and the offset at which each one ends."""
    count = draw(st.integers(1, 4))
    parts = [draw(encoded_response(allow_eof=False)) for _ in range(count - 1)]
    parts.append(draw(encoded_response(allow_eof=allow_eof)))
    data = b""
    ends = []
    for _, encoded in parts:
        data += encoded
        ends.append(len(data))
    return [response for response, _ in parts], data, ends


@settings(max_examples=300)
@given(streams(allow_eof=True))
def test_encoded_responses_decode_back_to_themselves(
    stream: tuple[list[Response], bytes, list[int]],
) -> None:
    responses, data, _ = stream
    assert decode_responses(data) == responses


@settings(max_examples=300)
@given(streams(allow_eof=False), st.data())
def test_truncation_never_decodes_silently(
    stream: tuple[list[Response], bytes, list[int]], data: st.DataObject
) -> None:
    # Only a cut that falls exactly between two responses is undetectable: the prefix is then a
    # complete stream of its own. A to-EOF body has no detectable end, so that framing is out.
    responses, encoded, ends = stream
    cut = data.draw(st.integers(0, len(encoded) - 1), label="cut")
    truncated = encoded[:cut]
    if cut == 0:
        fails(truncated, "No response decoded")
    elif cut in ends:
        assert decode_responses(truncated) == responses[: ends.index(cut) + 1]
    else:
        fails(truncated)


def _never_raises_but_decode_error(function: Callable[[bytes], object], data: bytes) -> None:
    try:
        function(data)
    except DecodeError as exc:
        message = str(exc)
    else:
        return
    assert message in ("Decoding failed", "No response decoded")


@settings(max_examples=500)
@given(st.binary(max_size=300))
@example(b"HTTP/1.1 200 OK\r\nContent-Length: " + b"9" * 5000 + b"\r\n\r\n")
@example(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + b"f" * 5000 + b"\r\n")
@example(b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\n\r\n\x1f\x8b")
def test_arbitrary_bytes_raise_only_decode_error(data: bytes) -> None:
    _never_raises_but_decode_error(decode_responses, data)


@settings(max_examples=500)
@given(streams(allow_eof=True), st.data())
def test_mutated_streams_raise_only_decode_error(
    stream: tuple[list[Response], bytes, list[int]], data: st.DataObject
) -> None:
    _, encoded, _ = stream
    start = data.draw(st.integers(0, len(encoded)), label="start")
    stop = data.draw(st.integers(start, min(len(encoded), start + 8)), label="stop")
    splice = data.draw(st.binary(max_size=8), label="splice")
    mutated = encoded[:start] + splice + encoded[stop:]
    _never_raises_but_decode_error(decode_responses, mutated)
