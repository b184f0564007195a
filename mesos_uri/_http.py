"""HTTP/1.x values and the sans-I/O decoder of curl's ``-i --raw`` output.

Request mode hands the stdout of ``curl -s -S -L -i --raw`` to :func:`decode_responses`: the
header block of every response curl read (redirects, ``100 Continue``, a proxy's CONNECT answer),
each followed by the body bytes curl printed for it. Grammar (RFC 9112), leniencies named below::

    status-line   = HTTP-version SP status-code SP [ reason-phrase ]
    field-line    = field-name ":" OWS field-value OWS
    obs-fold      = OWS CRLF RWS
    chunked-body  = *chunk last-chunk trailer-section CRLF
    chunk         = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
"""

from __future__ import annotations

import re
import zlib
from http import HTTPStatus
from typing import Final

import attrs

from mesos_uri._urls import REDIRECT_CODES
from mesos_uri.errors import DecodeError, TruncatedResponseError

__all__ = ["Headers", "Response", "decode_responses", "status_string"]


@attrs.frozen
class Headers:
    """Header fields in arrival order; names compare case-insensitively (RFC 9110)."""

    fields: tuple[tuple[str, str], ...] = ()

    def get(self, name: str) -> str | None:
        """The last value of ``name``: the original kept the last of a repeated header."""
        return next(reversed(self.get_all(name)), None)

    def get_all(self, name: str) -> list[str]:
        wanted = name.lower()
        return [value for key, value in self.fields if key.lower() == wanted]


@attrs.frozen
class Response:
    """One decoded response; ``status`` is ``"<code> <reason>"`` as the original prints it."""

    code: int
    status: str
    headers: Headers = Headers()
    body: bytes = b""


# The two texts the original's decoder failed with; the curl wrapper prefixes them.
DECODING_FAILED: Final = "Decoding failed"
NO_RESPONSE_DECODED: Final = "No response decoded"

# http-parser's HTTP_MAX_HEADER_SIZE, the limit the original applied to a header section.
MAX_HEADER_BYTES: Final = 80 * 1024
# Request mode carries manifests and tokens (4 MiB at most) and error bodies: a gzip body that
# inflates beyond this is a bomb, not a response we can use.
MAX_GUNZIPPED_BYTES: Final = 64 * 1024 * 1024
# 18 decimal digits are an exabyte; longer lengths are hostile and would trip int()'s digit limit.
_MAX_LENGTH_DIGITS: Final = 18

# *( HTAB / SP / VCHAR / obs-text ): a reason-phrase or field-value, no other controls (RFC 9110
# lets a recipient reject CR, LF and NUL; we reject every CTL but HTAB).
_TEXT: Final = rb"[\t\x20-\x7e\x80-\xff]*"
# HTTP-version = "HTTP/" DIGIT "." DIGIT; curl prints "HTTP/2" and "HTTP/3" without a minor.
# status-code = 3DIGIT, any of them (the original failed on a code outside its table).
# http-parser also took "HTTP/1.1 200", without the SP before an empty reason-phrase.
_STATUS_LINE: Final = re.compile(rb"HTTP/(?:[0-9]\.[0-9]|[23]) ([0-9]{3})(?: (" + _TEXT + rb"))?")
# field-name = token
_FIELD_LINE: Final = re.compile(rb"([!#$%&'*+\-.^_`|~0-9A-Za-z]+):(" + _TEXT + rb")")
_OBS_FOLD: Final = re.compile(rb"[ \t]" + _TEXT)
# chunk-size = 1*HEXDIG; chunk-ext = *( BWS ";" BWS ext-name [ BWS "=" BWS ext-val ] ), ignored.
_CHUNK_LINE: Final = re.compile(rb"([0-9A-Fa-f]+)[ \t]*(?:;[^\r\n]*)?\r?\n")

# Where our phrases differ from the standard library's (the IANA registry's): the original's
# own, and 418 and 422 as IANA spells them; 413 is listed as Python 3.13 renames it.
_PHRASES: Final = {
    408: "Request Time-out",
    413: "Request Entity Too Large",
    414: "Request-URI Too Large",
    416: "Requested range not satisfiable",
    418: "I'm a teapot",
    422: "Unprocessable Content",
    504: "Gateway Time-out",
    505: "HTTP Version not supported",
}


def status_string(code: int, reason: str | None = None) -> str:
    """``"<code> <phrase>"``: a registered code's phrase wins over the server's, so that texts
    read as the original's; an unregistered code keeps the server's, which is all there is."""
    try:
        text = _PHRASES.get(code) or HTTPStatus(code).phrase
    except ValueError:
        text = (reason or "").strip(" \t")
    return f"{code:03d} {text}" if text else f"{code:03d}"


def decode_responses(data: bytes) -> list[Response]:
    """The responses in curl's ``-i --raw`` stdout, in order. As in the original, all of it must
    decode: a cut, a malformed line or an oversized header section fail after complete ones too."""
    responses: list[Response] = []
    pos = 0
    while (pos := _skip_empty_lines(data, pos)) < len(data):
        head, pos = _parse_head(data, pos)
        body, pos = _read_body(data, pos, head)
        responses.append(attrs.evolve(head, body=_decode_content(head.headers, body)))
    if not responses:
        raise DecodeError(NO_RESPONSE_DECODED)
    return responses


def _line(data: bytes, pos: int) -> tuple[bytes, int] | None:
    """The line at ``pos`` without its CRLF (RFC 9112 tolerates a bare LF) and the next pos."""
    end = data.find(b"\n", pos)
    return None if end < 0 else (data[pos:end].removesuffix(b"\r"), end + 1)


def _skip_empty_lines(data: bytes, pos: int) -> int:
    """Skip the empty lines http-parser ignored between messages (RFC 9112 allows it)."""
    while (got := _line(data, pos)) is not None and not got[0]:
        pos = got[1]
    return pos


def _parse_head(data: bytes, start: int) -> tuple[Response, int]:
    """The status line and header block at ``start`` (empty body), and the position after it.
    Data that ends inside the block was cut off, not garbled: a truncated response."""
    got = _line(data, start)
    if got is None:
        if not b"HTTP/".startswith(data[start : start + 5]) or len(data) - start > MAX_HEADER_BYTES:
            raise DecodeError(DECODING_FAILED)
        raise TruncatedResponseError(DECODING_FAILED)
    match = _STATUS_LINE.fullmatch(got[0])
    if match is None:
        raise DecodeError(DECODING_FAILED)
    pairs, pos = _read_fields(data, got[1], start, cut=TruncatedResponseError)
    code, reason = int(match[1]), match[2]
    status = status_string(code, None if reason is None else reason.decode("latin-1"))
    return Response(code, status, Headers(tuple(pairs))), pos


def _read_fields(
    data: bytes, pos: int, start: int, *, cut: type[DecodeError]
) -> tuple[list[tuple[str, str]], int]:
    """Field lines up to the blank line, and the position after it; ``cut`` if it never came."""
    pairs: list[tuple[str, str]] = []
    while True:
        got = _line(data, pos)
        if got is None or got[1] - start > MAX_HEADER_BYTES:
            raise (DecodeError if len(data) - start > MAX_HEADER_BYTES else cut)(DECODING_FAILED)
        line, pos = got
        if not line:
            return pairs, pos
        if (match := _FIELD_LINE.fullmatch(line)) is not None:
            pairs.append((match[1].decode("ascii"), _field_value(match[2])))
        elif pairs and _OBS_FOLD.fullmatch(line):
            # obs-fold becomes one SP (RFC 9112); the original kept its raw whitespace.
            name, value = pairs[-1]
            pairs[-1] = (name, f"{value} {_field_value(line)}".strip(" \t"))
        else:
            raise DecodeError(DECODING_FAILED)


def _field_value(raw: bytes) -> str:
    # Trailing whitespace is OWS too (RFC 9110); http-parser, the original's, kept it.
    return raw.strip(b" \t").decode("latin-1")


def _read_body(data: bytes, pos: int, head: Response) -> tuple[bytes, int]:
    """The body of ``head`` starting at ``pos``, and the position after it."""
    # 1xx, 204 and 304 end at their header block whatever they declare (RFC 9112);
    # http-parser honoured a Content-Length on them first.
    if 100 <= head.code < 200 or head.code in (204, 304):
        return b"", pos
    unprinted = data.startswith(b"HTTP/", pos)
    if unprinted and head.code in REDIRECT_CODES and head.headers.get("Location") is not None:
        # curl -L followed this redirect and printed its header block only, never its body.
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
        # body: a proxy's "200 Connection established" (the original guessed it from https_proxy).
        return b"", pos
    return data[pos:], len(data)


def _framing(headers: Headers) -> tuple[bool, int | None]:
    """(chunked, Content-Length) per RFC 9112; (False, None) means the body runs to EOF."""
    codings = _list_values(headers.get_all("Transfer-Encoding"))
    # Content-Length is not a #rule: an empty value or element is malformed, not absent.
    lengths = [
        item.strip(" \t")
        for value in headers.get_all("Content-Length")
        for item in value.split(",")
    ]
    if codings:
        # Both framings at once is how request smuggling starts (RFC 9112 refuses it); any
        # coding but chunked would reach us undecoded, since curl --raw passes it through.
        if lengths or codings != ["chunked"]:
            raise DecodeError(DECODING_FAILED)
        return True, None
    if not lengths:
        return False, None
    # Content-Length = 1*DIGIT; a list of identical values is one length (RFC 9110).
    length = lengths[0] if len(set(lengths)) == 1 else ""
    if not (length.isascii() and length.isdigit()) or len(length.lstrip("0")) > _MAX_LENGTH_DIGITS:
        raise DecodeError(DECODING_FAILED)
    return False, int(length)


def _list_values(values: list[str]) -> list[str]:
    """The elements of a #rule list, lower-cased; empty elements are dropped (RFC 9110)."""
    items = (item.strip(" \t").lower() for value in values for item in value.split(","))
    return [item for item in items if item]


def _dechunk(data: bytes, pos: int) -> tuple[bytes, int]:
    body = bytearray()
    while True:
        match = _CHUNK_LINE.match(data, pos)
        if match is None or len(match[1].lstrip(b"0")) > _MAX_LENGTH_DIGITS:
            raise DecodeError(DECODING_FAILED)
        pos = match.end()
        size = int(match[1], 16)
        if size == 0:
            break
        end = pos + size
        after = _line(data, end)
        if end > len(data) or after is None or after[0]:
            raise DecodeError(DECODING_FAILED)
        body += data[pos:end]
        pos = after[1]
    # Trailer fields are read and dropped; the original stored an empty-named header instead.
    return bytes(body), _read_fields(data, pos, pos, cut=DecodeError)[1]


def _decode_content(headers: Headers, body: bytes) -> bytes:
    """Undo ``Content-Encoding: gzip`` (or its alias x-gzip)."""
    if not body or _list_values(headers.get_all("Content-Encoding")) not in (["gzip"], ["x-gzip"]):
        return body
    out = bytearray()  # the original aborted on inflated bodies over 127 bytes
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
