"""HTTP/1.x values and the sans-I/O decoder of curl's ``-i --raw`` output.

Request mode runs ``curl -s -S -L -i --raw`` and reads its stdout after curl exits: the header
block of every response curl read (redirects, ``100 Continue``, a proxy's CONNECT answer), each
followed by the body bytes curl printed for it. Download mode writes ``-D -`` header blocks and
the raw body to one pipe and asks :func:`parse_head` for one block at a time. Nothing here does
I/O: bytes in, :class:`Response` values or :class:`~mesos_uri.errors.DecodeError` out.

Grammar (RFC 9112; the regexes below implement it, with the leniencies named beside them)::

    status-line   = HTTP-version SP status-code SP [ reason-phrase ]
    field-line    = field-name ":" OWS field-value OWS
    obs-fold      = OWS CRLF RWS
    chunked-body  = *chunk last-chunk trailer-section CRLF
    chunk         = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterator
from typing import Final

import attrs

from mesos_uri._urls import REDIRECT_CODES
from mesos_uri.errors import DecodeError, TruncatedResponseError

__all__ = [
    "DECODING_FAILED",
    "MAX_GUNZIPPED_BYTES",
    "MAX_HEADER_BYTES",
    "NO_RESPONSE_DECODED",
    "Headers",
    "Response",
    "decode_responses",
    "parse_head",
    "status_string",
]


@attrs.frozen
class Headers:
    """Header fields in arrival order; names compare case-insensitively (RFC 9110 §5.1)."""

    fields: tuple[tuple[str, str], ...] = ()

    def get(self, name: str) -> str | None:
        """The last value of ``name``: a repeated header keeps its last value (SPEC.md §4.3)."""
        wanted = name.lower()
        found: str | None = None
        for key, value in self.fields:
            if key.lower() == wanted:
                found = value
        return found

    def get_all(self, name: str) -> list[str]:
        wanted = name.lower()
        return [value for key, value in self.fields if key.lower() == wanted]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self.fields)

    def __len__(self) -> int:
        return len(self.fields)


@attrs.frozen
class Response:
    """One decoded response; ``status`` is ``"<code> <reason>"`` as the original prints it."""

    code: int
    status: str
    headers: Headers = Headers()
    body: bytes = b""


# The two texts the original's decoder fails with (SPEC.md §4.3); the curl wrapper prefixes them.
DECODING_FAILED: Final = "Decoding failed"
NO_RESPONSE_DECODED: Final = "No response decoded"

# http-parser's HTTP_MAX_HEADER_SIZE, the limit the original applied to a header section.
MAX_HEADER_BYTES: Final = 80 * 1024
# Request mode carries manifests and tokens (4 MiB at most, issue #4) and error bodies: a gzip
# body that inflates beyond this is a bomb, not a response we can use.
MAX_GUNZIPPED_BYTES: Final = 64 * 1024 * 1024
# 18 decimal digits are an exabyte; longer lengths are hostile and would trip int()'s digit limit.
_MAX_LENGTH_DIGITS: Final = 18

# HTTP-version = "HTTP/" DIGIT "." DIGIT; curl prints "HTTP/2" and "HTTP/3" without a minor.
# status-code = 3DIGIT, any of them (the original only knew its table: SPEC.md §9 row 14).
# reason-phrase = 1*( HTAB / SP / VCHAR / obs-text ); http-parser also took "HTTP/1.1 200".
_STATUS_LINE: Final = re.compile(
    rb"HTTP/(?:[0-9]\.[0-9]|[23]) ([0-9]{3})(?: ([\t\x20-\x7e\x80-\xff]*))?"
)
# field-name = token; field-value = *( VCHAR / obs-text / SP / HTAB ), no other controls
# (RFC 9110 §5.5 lets a recipient reject CR, LF and NUL; we reject every CTL but HTAB).
_FIELD_LINE: Final = re.compile(rb"([!#$%&'*+\-.^_`|~0-9A-Za-z]+):([\t\x20-\x7e\x80-\xff]*)")
_OBS_FOLD: Final = re.compile(rb"[ \t][\t\x20-\x7e\x80-\xff]*")
# chunk-size = 1*HEXDIG; chunk-ext = *( BWS ";" BWS ext-name [ BWS "=" BWS ext-val ] ), ignored.
_CHUNK_SIZE: Final = re.compile(rb"([0-9A-Fa-f]+)[ \t]*(?:;[^\r\n]*)?")
_OWS: Final = b" \t"


# The original's table verbatim (SPEC.md §4.3), then the IANA registry's other phrases.
_REASONS: Final[dict[int, str]] = {
    100: "Continue",
    101: "Switching Protocols",
    200: "OK",
    201: "Created",
    202: "Accepted",
    203: "Non-Authoritative Information",
    204: "No Content",
    205: "Reset Content",
    206: "Partial Content",
    300: "Multiple Choices",
    301: "Moved Permanently",
    302: "Found",
    303: "See Other",
    304: "Not Modified",
    305: "Use Proxy",
    307: "Temporary Redirect",
    400: "Bad Request",
    401: "Unauthorized",
    402: "Payment Required",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    407: "Proxy Authentication Required",
    408: "Request Time-out",
    409: "Conflict",
    410: "Gone",
    411: "Length Required",
    412: "Precondition Failed",
    413: "Request Entity Too Large",
    414: "Request-URI Too Large",
    415: "Unsupported Media Type",
    416: "Requested range not satisfiable",
    417: "Expectation Failed",
    500: "Internal Server Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Time-out",
    505: "HTTP Version not supported",
    # Beyond the original's table: the IANA HTTP Status Code Registry (RFC 9110 and others).
    102: "Processing",
    103: "Early Hints",
    207: "Multi-Status",
    208: "Already Reported",
    226: "IM Used",
    308: "Permanent Redirect",
    418: "I'm a teapot",
    421: "Misdirected Request",
    422: "Unprocessable Content",
    423: "Locked",
    424: "Failed Dependency",
    425: "Too Early",
    426: "Upgrade Required",
    428: "Precondition Required",
    429: "Too Many Requests",
    431: "Request Header Fields Too Large",
    451: "Unavailable For Legal Reasons",
    506: "Variant Also Negotiates",
    507: "Insufficient Storage",
    508: "Loop Detected",
    510: "Not Extended",
    511: "Network Authentication Required",
}


def status_string(code: int, reason: str | None = None) -> str:
    """``"<code> <text>"`` from the table, else ``"<code>"`` plus the server's reason, if any.

    The table wins over the server's phrase so that texts read as the original's (SPEC.md §4.3);
    an unknown code keeps the server's phrase, which is all a reader has to go on.
    """
    text = _REASONS.get(code) or (reason or "").strip(" \t")
    return f"{code:03d} {text}" if text else f"{code:03d}"


def decode_responses(data: bytes) -> list[Response]:
    """Decode curl's ``-i --raw`` stdout into the responses it holds, in order.

    The whole output must decode: EOF inside a response, a malformed line or a header section
    over :data:`MAX_HEADER_BYTES` raise ``DecodeError("Decoding failed")`` even when earlier
    responses were complete, as in the original; empty input raises
    ``DecodeError("No response decoded")``.
    """
    responses: list[Response] = []
    pos = _skip_empty_lines(data, 0)
    while pos < len(data):
        parsed = _parse_head_at(data, pos)
        if parsed is None:
            # The data ends inside a header block: the connection was cut, not garbled.
            raise TruncatedResponseError(DECODING_FAILED)
        head, pos = parsed
        body, pos = _read_body(data, pos, head)
        responses.append(attrs.evolve(head, body=_decode_content(head.headers, body)))
        pos = _skip_empty_lines(data, pos)
    if not responses:
        raise DecodeError(NO_RESPONSE_DECODED)
    return responses


def parse_head(data: bytes) -> tuple[Response, int] | None:
    """Parse one status line and header block at the start of ``data``.

    Returns the response (empty body) and the number of bytes consumed through the blank line,
    or None while the block is incomplete. Download mode calls it on curl's ``-D -`` output and
    loops past ``1xx`` blocks; the ``HTTP/2 200`` lines curl writes there when HTTP/2 was
    negotiated are accepted (by :func:`decode_responses` too: the grammar is shared).
    """
    return _parse_head_at(data, 0)


def _line(data: bytes, pos: int) -> tuple[bytes, int] | None:
    """The line at ``pos`` without its CRLF (bare LF tolerated, RFC 9112 §2.2) and the next pos."""
    end = data.find(b"\n", pos)
    if end < 0:
        return None
    line = data[pos:end]
    return (line[:-1] if line.endswith(b"\r") else line), end + 1


def _skip_empty_lines(data: bytes, pos: int) -> int:
    """Skip the empty lines http-parser ignored between messages (RFC 9112 §2.2 allows it)."""
    while (got := _line(data, pos)) is not None and not got[0]:
        pos = got[1]
    return pos


def _parse_head_at(data: bytes, pos: int) -> tuple[Response, int] | None:
    start = _skip_empty_lines(data, pos)
    if start - pos > MAX_HEADER_BYTES:
        raise DecodeError(DECODING_FAILED)
    pos = start
    got = _line(data, pos)
    if got is None:
        partial = data[pos : pos + 5]
        if not b"HTTP/".startswith(partial) or len(data) - start > MAX_HEADER_BYTES:
            raise DecodeError(DECODING_FAILED)
        return None
    status_line, pos = got
    match = _STATUS_LINE.fullmatch(status_line)
    if match is None:
        raise DecodeError(DECODING_FAILED)
    code = int(match[1])
    reason = None if match[2] is None else match[2].decode("latin-1")
    fields = _read_fields(data, pos, start)
    if fields is None:
        return None
    pairs, pos = fields
    return Response(code, status_string(code, reason), Headers(tuple(pairs))), pos


def _read_fields(data: bytes, pos: int, start: int) -> tuple[list[tuple[str, str]], int] | None:
    """Field lines up to the blank line; None when it has not arrived yet."""
    pairs: list[tuple[str, str]] = []
    while True:
        got = _line(data, pos)
        if got is None or got[1] - start > MAX_HEADER_BYTES:
            if len(data) - start > MAX_HEADER_BYTES:
                raise DecodeError(DECODING_FAILED)
            return None
        line, pos = got
        if not line:
            return pairs, pos
        if (match := _FIELD_LINE.fullmatch(line)) is not None:
            pairs.append((match[1].decode("ascii"), _field_value(match[2])))
        elif pairs and _OBS_FOLD.fullmatch(line):
            # obs-fold is replaced by one SP (RFC 9112 §5.2); the original kept the raw
            # whitespace of the continuation line (SPEC.md §4.3).
            name, value = pairs[-1]
            pairs[-1] = (name, f"{value} {_field_value(line)}".strip(" \t"))
        else:
            raise DecodeError(DECODING_FAILED)


def _field_value(raw: bytes) -> str:
    # Trailing whitespace is OWS too (RFC 9110 §5.5); the original kept it (SPEC.md §9 row 29).
    return raw.strip(_OWS).decode("latin-1")


def _read_body(data: bytes, pos: int, head: Response) -> tuple[bytes, int]:
    """The body of ``head`` starting at ``pos``, and the position after it."""
    code = head.code
    # 1xx, 204 and 304 end at their header block whatever they declare (RFC 9112 §6.3 rule 1);
    # http-parser honoured a Content-Length on them first.
    if 100 <= code < 200 or code in (204, 304):
        return b"", pos
    unprinted = data.startswith(b"HTTP/", pos)
    if unprinted and code in REDIRECT_CODES and "Location" in head.headers:
        # curl followed this redirect and printed its header block only (SPEC.md §4.3.1).
        return b"", pos
    chunked, length = _framing(head.headers)
    if chunked:
        return _dechunk(data, pos)
    if length is not None:
        end = pos + length
        if end > len(data):
            raise DecodeError(DECODING_FAILED)
        return data[pos:end], end
    if unprinted:
        # A length-less block directly followed by a status line is one curl printed without a
        # body: a proxy's "200 Connection established". Known by structure, not by
        # https_proxy as the original did (SPEC.md §4.3.3, §9 row 15).
        return b"", pos
    return data[pos:], len(data)


def _framing(headers: Headers) -> tuple[bool, int | None]:
    """(chunked, Content-Length) per RFC 9112 §6.3; (False, None) means the body runs to EOF."""
    codings = _list_values(headers.get_all("Transfer-Encoding"))
    # Content-Length is not a #rule: an empty value or element is malformed, not absent.
    lengths = [
        item.strip(" \t")
        for value in headers.get_all("Content-Length")
        for item in value.split(",")
    ]
    if codings:
        # Both framings at once is how request smuggling starts (RFC 9112 §6.3 rule 3); any
        # coding but chunked would reach us undecoded, since curl --raw passes it through.
        if lengths or codings != ["chunked"]:
            raise DecodeError(DECODING_FAILED)
        return True, None
    if not lengths:
        return False, None
    # Content-Length = 1*DIGIT; a list of identical values is one length (RFC 9110 §8.6).
    if len(set(lengths)) != 1 or not _is_length(lengths[0]):
        raise DecodeError(DECODING_FAILED)
    return False, int(lengths[0])


def _list_values(values: list[str]) -> list[str]:
    """The elements of a #rule list, lower-cased; empty elements are dropped (RFC 9110 §5.6.1)."""
    items = (item.strip(" \t").lower() for value in values for item in value.split(","))
    return [item for item in items if item]


def _is_length(text: str) -> bool:
    return text.isascii() and text.isdigit() and len(text.lstrip("0")) <= _MAX_LENGTH_DIGITS


def _dechunk(data: bytes, pos: int) -> tuple[bytes, int]:
    body = bytearray()
    while True:
        got = _line(data, pos)
        if got is None:
            raise DecodeError(DECODING_FAILED)
        line, pos = got
        match = _CHUNK_SIZE.fullmatch(line)
        if match is None or len(match[1].lstrip(b"0")) > _MAX_LENGTH_DIGITS:
            raise DecodeError(DECODING_FAILED)
        size = int(match[1], 16)
        if size == 0:
            break
        end = pos + size
        after = _line(data, end)
        if end > len(data) or after is None or after[0]:
            raise DecodeError(DECODING_FAILED)
        body += data[pos:end]
        pos = after[1]
    # Trailer fields are read and dropped; the original stored an empty-named header instead
    # (SPEC.md §9 row 29).
    trailers = _read_fields(data, pos, pos)
    if trailers is None:
        raise DecodeError(DECODING_FAILED)
    return bytes(body), trailers[1]


def _decode_content(headers: Headers, body: bytes) -> bytes:
    """Undo ``Content-Encoding: gzip`` (or its alias x-gzip, RFC 9110 §8.4.1.3)."""
    if not body or _list_values(headers.get_all("Content-Encoding")) not in (["gzip"], ["x-gzip"]):
        return body
    # The original aborted on inflated bodies over 127 bytes (SPEC.md §9 row 21).
    out = bytearray()
    rest = body
    while rest:  # RFC 1952 allows several members back to back
        inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        try:
            out += inflater.decompress(rest, MAX_GUNZIPPED_BYTES + 1 - len(out))
        except zlib.error as exc:
            raise DecodeError(DECODING_FAILED) from exc
        if len(out) > MAX_GUNZIPPED_BYTES or not inflater.eof:
            raise DecodeError(DECODING_FAILED)
        rest = inflater.unused_data
    return bytes(out)
