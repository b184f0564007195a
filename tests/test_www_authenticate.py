"""The WWW-Authenticate parser: the original's test cases and the forms of RFC 9110."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from mesos_uri._http import Headers
from mesos_uri._www_authenticate import Challenge, parse_www_authenticate, select_challenge
from mesos_uri.errors import AuthError, FetchError


def fails(value: str, message: str) -> None:
    with pytest.raises(AuthError) as info:
        parse_www_authenticate(value)
    assert str(info.value) == message
    assert isinstance(info.value, FetchError)


# --- the original's HTTPTest.WWWAuthenticateHeader --------------------------------------------


def test_basic_challenge() -> None:
    assert parse_www_authenticate('Basic realm="basic-realm"') == [
        Challenge("Basic", (("realm", "basic-realm"),))
    ]


def test_missing_header_is_none() -> None:
    assert Headers((("Content-Length", "0"),)).get("WWW-Authenticate") is None


def test_bearer_challenge_with_realm_service_and_scope() -> None:
    value = (
        'Bearer realm="https://auth.docker.io/token", service="registry.docker.io",'
        'scope="repository:library/busybox:pull"'
    )
    [challenge] = parse_www_authenticate(value)
    assert challenge.scheme == "Bearer"
    assert challenge.params == (
        ("realm", "https://auth.docker.io/token"),
        ("service", "registry.docker.io"),
        ("scope", "repository:library/busybox:pull"),
    )


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "Unexpected WWW-Authenticate header format: ''"),
        (" ", "Unexpected WWW-Authenticate header format: ' '"),
        ("Digest", "Unexpected WWW-Authenticate header format: 'Digest'"),
        ("Digest =", "Unexpected auth-param format: '='"),
        (
            'Digest uri="/dir/index.html",qop=auth',
            "Unexpected auth-param 'uri=\"/dir/index.html\",qop=auth': 'realm' is not defined",
        ),
        (
            'Bearer ="https://https://example.com"',
            "Unexpected auth-param format: '=\"https://https://example.com\"'",
        ),
        (
            'Bearer "realm"="https://example.com"',
            'Unexpected auth-param format: \'"realm"="https://example.com"\'',
        ),
    ],
)
def test_malformed_header_fails_with_the_original_text(value: str, message: str) -> None:
    fails(value, message)


def test_empty_list_elements_are_accepted_so_digest_commas_lack_only_a_realm() -> None:
    # RFC 9110 §5.6.1: empty list elements are legal, so "Digest ,," is a Digest challenge with
    # no auth-param. It still fails, as in the original, but on the missing realm rather than on
    # the format ("Unexpected auth-param format: ',,'").
    fails("Digest ,,", "Unexpected auth-param ',,': 'realm' is not defined")


def test_quoted_realm_keeps_commas_and_equals_mesos_9968() -> None:
    realm = "https://nvcr.io/proxy_auth?scope=repository:nvidia/tensorflow:pull,push"
    assert parse_www_authenticate(f'Bearer realm="{realm}"') == [
        Challenge("Bearer", (("realm", realm),))
    ]


# --- RFC 9110 forms the original did not read -------------------------------------------------


def test_several_challenges_in_one_header() -> None:
    assert parse_www_authenticate('Bearer realm="a",service="b", Basic realm="c"') == [
        Challenge("Bearer", (("realm", "a"), ("service", "b"))),
        Challenge("Basic", (("realm", "c"),)),
    ]


def test_challenges_with_token68_and_without_params() -> None:
    assert parse_www_authenticate('Negotiate, NTLM abc+/de==,Basic realm="r"') == [
        Challenge("Negotiate"),
        Challenge("NTLM", token68="abc+/de=="),
        Challenge("Basic", (("realm", "r"),)),
    ]


def test_backslash_escapes_in_quoted_strings() -> None:
    [challenge] = parse_www_authenticate(r'Basic realm="say \"hi\" \\ \o/"')
    assert challenge.param("realm") == r'say "hi" \ o/'


def test_tabs_and_spaces_are_ows() -> None:
    # The original split on ' ' only and kept spaces around '=' in names and values.
    value = 'Bearer\t realm = "r" ,\tservice\t=\ttoken-service\t, scope="s"  '
    [challenge] = parse_www_authenticate(value)
    assert challenge.params == (("realm", "r"), ("service", "token-service"), ("scope", "s"))


def test_param_names_and_schemes_are_case_insensitive() -> None:
    # The original failed 'Realm="x"' with "'realm' is not defined".
    [challenge] = parse_www_authenticate('bEARER Realm="x", SERVICE=y')
    assert challenge.scheme == "bEARER"
    assert select_challenge('Basic realm="b", bEARER Realm="x"').scheme == "bEARER"
    assert (challenge.param("realm"), challenge.param("Service")) == ("x", "y")
    assert challenge.param("scope") is None


def test_repeated_param_keeps_the_last_value() -> None:
    [challenge] = parse_www_authenticate('Bearer realm="a", realm="b"')
    assert challenge.param("realm") == "b"
    assert challenge.params == (("realm", "a"), ("realm", "b"))


def test_quoted_string_and_token_values_are_the_same() -> None:
    quoted = parse_www_authenticate('Bearer realm="r",service="s"')
    assert parse_www_authenticate("Bearer realm=r,service=s") == quoted


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ('Bearer realm="unterminated', "Unexpected auth-param format: 'realm=\"unterminated'"),
        ('Bearer realm="a" junk', "Unexpected auth-param format: 'realm=\"a\" junk'"),
        ("Bearer realm=", "Unexpected auth-param 'realm=': 'realm' is not defined"),
        ("Bearer realm=a b=c", "Unexpected auth-param format: 'realm=a b=c'"),
        ("Foo bar baz", "Unexpected auth-param format: 'bar baz'"),
        ("Bearer abc==", "Unexpected auth-param 'abc==': 'realm' is not defined"),
        ('Bearer="r"', "Unexpected WWW-Authenticate header format: 'Bearer=\"r\"'"),
        ('"Bearer" realm="r"', 'Unexpected WWW-Authenticate header format: \'"Bearer" realm="r"\''),
        (
            'Bearer realm="a", Basic',
            "Unexpected WWW-Authenticate header format: 'Bearer realm=\"a\", Basic'",
        ),
        (
            'Bearer realm="a", Basic charset="UTF-8"',
            "Unexpected auth-param 'charset=\"UTF-8\"': 'realm' is not defined",
        ),
        ('Basic realm="bell\x07"', "Unexpected auth-param format: 'realm=\"bell?\"'"),
    ],
)
def test_malformed_rfc_forms_fail(value: str, message: str) -> None:
    fails(value, message)


def test_a_hostile_header_is_quoted_without_escapes_and_cut_short() -> None:
    value = "\x1b]0;pwned\x07\x1b[2J" + "x" * 100_000
    with pytest.raises(AuthError) as caught:
        parse_www_authenticate(value)
    text = str(caught.value)
    assert "\x1b" not in text
    assert "\x07" not in text
    assert len(text) < 1000


def test_realm_is_optional_for_schemes_that_do_not_define_one() -> None:
    assert parse_www_authenticate("Negotiate") == [Challenge("Negotiate")]
    assert parse_www_authenticate("Foo a=b") == [Challenge("Foo", (("a", "b"),))]


# --- select_challenge -------------------------------------------------------------------------


def test_select_challenge_prefers_bearer() -> None:
    chosen = select_challenge('Basic realm="b", bearer realm="t",service="s"')
    assert chosen == Challenge("bearer", (("realm", "t"), ("service", "s")))


def test_select_challenge_falls_back_to_the_first() -> None:
    assert select_challenge('Negotiate, Basic realm="b"') == Challenge("Negotiate")
    assert select_challenge('Basic realm="b"') == Challenge("Basic", (("realm", "b"),))


def test_select_challenge_raises_on_a_malformed_header() -> None:
    with pytest.raises(AuthError, match="Unexpected WWW-Authenticate header format: ''"):
        select_challenge("")


# --- properties -------------------------------------------------------------------------------

_TCHAR = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
_TOKEN68_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/"
_REALM_SCHEMES = {"basic", "bearer", "digest"}

tokens = st.text(_TCHAR, min_size=1, max_size=10)
# qdtext: every character but CTLs (HTAB allowed); '"' and '\' arrive escaped.
texts = st.text(
    st.characters(codec="latin-1", exclude_categories=["Cc"], exclude_characters="\x7f")
    | st.just("\t"),
    max_size=20,
)
ows = st.text(" \t", max_size=2)


def _quote(value: str, escape_all: bool) -> str:
    escaped = "".join("\\" + c if escape_all or c in '"\\' else c for c in value)
    return f'"{escaped}"'


@st.composite
def challenges(draw: st.DrawFn) -> tuple[Challenge, str]:
    """A challenge and one of the ways a server may write it."""
    scheme = draw(tokens)
    kind = draw(st.sampled_from(["params", "token68", "bare"]))
    if scheme.lower() in _REALM_SCHEMES:
        kind = "params"
    if kind == "bare":
        return Challenge(scheme), scheme
    gap = draw(st.text(" \t", min_size=1, max_size=2))
    if kind == "token68":
        token68 = draw(st.text(_TOKEN68_CHARS, min_size=1, max_size=12)) + "=" * draw(
            st.integers(0, 2)
        )
        return Challenge(scheme, token68=token68), f"{scheme}{gap}{token68}"
    params = draw(st.lists(st.tuples(tokens, texts), min_size=1, max_size=4))
    if scheme.lower() in _REALM_SCHEMES and all(n.lower() != "realm" for n, _ in params):
        params.insert(draw(st.integers(0, len(params))), ("realm", draw(texts)))
    written = []
    for name, value in params:
        as_token = value and all(c in _TCHAR for c in value) and draw(st.booleans())
        shown = value if as_token else _quote(value, draw(st.booleans()))
        written.append(f"{name}{draw(ows)}={draw(ows)}{shown}")
    separator = draw(st.sampled_from([",", ", ", " ,\t", ",,", " , , "]))
    return Challenge(scheme, tuple(params)), f"{scheme}{gap}{separator.join(written)}"


@settings(max_examples=300)
@given(st.lists(challenges(), min_size=1, max_size=4), ows, ows, st.data())
def test_written_challenges_parse_back(
    written: list[tuple[Challenge, str]], lead: str, trail: str, data: st.DataObject
) -> None:
    separator = data.draw(st.sampled_from([",", ", ", " , ", ",\t,"]), label="separator")
    value = lead + separator.join(text for _, text in written) + trail
    assert parse_www_authenticate(value) == [challenge for challenge, _ in written]


@settings(max_examples=1000)
@given(st.text(max_size=60))
@example('Bearer realm="\\')
@example('Bearer realm="a\\\n"')
@example("Basic ,=,")
def test_arbitrary_text_raises_only_auth_error(value: str) -> None:
    try:
        parse_www_authenticate(value)
    except AuthError as exc:
        message = str(exc)
    else:
        return
    assert message.startswith("Unexpected ")


@settings(max_examples=500)
@given(challenges(), st.data())
def test_mutated_headers_raise_only_auth_error(
    written: tuple[Challenge, str], data: st.DataObject
) -> None:
    _, value = written
    start = data.draw(st.integers(0, len(value)), label="start")
    stop = data.draw(st.integers(start, min(len(value), start + 4)), label="stop")
    splice = data.draw(st.text(' \t,="\\;abcAB=', max_size=4), label="splice")
    with contextlib.suppress(AuthError):
        select_challenge(value[:start] + splice + value[stop:])
