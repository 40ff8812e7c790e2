"""Hostile bytes, wherever they come in, each refused in one located line, fast and small.

Every case runs the command line as a subprocess, as a user (or a pull request)
would: exit 1, the message naming the file (and line, column and field where
there is one), no traceback, within WALL_SECONDS of wall time and under
MAX_MEMORY bytes of address space (past it the child would fail, not pass),
and, where a Stripe account is involved, not one request sent.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from reconciler.config import MAX_FILE_BYTES
from reconciler.emulator import Emulator
from reconciler.planfile import MAX_PLAN_BYTES
from tests.conftest import PASTED_SECRETS
from tests.e2e.conftest import API_KEY, EXAMPLE_CATALOG, stripe_reconcile

WALL_SECONDS = 20.0
MAX_MEMORY = 512 * 1024 * 1024
"""The run before these bounds: 1.7 GB and 69 s for the 5 MB flow list."""
EXAMPLE = str(EXAMPLE_CATALOG)
BASE = "version: 1\nmode: test\n"
PRODUCT = "products:\n  - id: prod_a\n    name: A\n"
DEEP = 5_000
DEEPER = 100_000
HUGE = "9" * 5_000


def refused(*args: str, url: str | None = None, key: str = API_KEY) -> str:
    """Run the command line; assert the refusal's shape and bounds; return its stderr."""
    started = time.monotonic()
    result = stripe_reconcile(
        *args, url=url, key=key, max_memory=MAX_MEMORY, timeout=WALL_SECONDS * 3
    )
    elapsed = time.monotonic() - started
    output = result.stdout + result.stderr
    assert result.returncode == 1, output[-2000:]
    assert "Traceback" not in output, output[-2000:]
    assert "\x1b" not in output
    assert elapsed < WALL_SECONDS, f"took {elapsed:.1f} s"
    return result.stderr


# --- billing.yaml -------------------------------------------------------------------------


def _write(path: Path, text: str | bytes) -> Path:
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def _yaml(text: str | bytes) -> Callable[[Path], Path]:
    return lambda tmp: _write(tmp / "hostile.yaml", text)


def _flow_list(item: str, total_bytes: int) -> str:
    head = BASE + "products: ["
    count = (total_bytes - len(head) - 2) // (len(item) + 1)
    return head + ",".join([item] * count) + "]\n"


def _merge_chain(length: int) -> str:
    lines = [BASE.rstrip("\n"), "x: 0"]
    for n in range(1, length):
        merge = f"<<: *a{n - 1}, " if n > 1 else ""
        lines.append(f"x: &a{n} {{{merge}k{n}: 1}}")
    return "\n".join(lines) + f"\nproducts: [{{<<: *a{length - 1}}}]\n"


def _billion_laughs() -> str:
    lines = [BASE.rstrip("\n"), "a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{n}: &a{n} [{', '.join([f'*a{n - 1}'] * 10)}]" for n in range(1, 10)]
    return "\n".join(lines) + "\n"


def _fifo(tmp: Path) -> Path:
    path = tmp / "hostile.yaml"
    os.mkfifo(path)
    return path


def _sparse(size: int, name: str) -> Callable[[Path], Path]:
    def make(tmp: Path) -> Path:
        path = tmp / name
        with path.open("wb") as handle:
            handle.truncate(size)
        return path

    return make


YAML_CASES: dict[str, tuple[Callable[[Path], Path], str]] = {
    "5000-nested-lists": (
        _yaml(BASE + "products: " + "[" * DEEP + "]" * DEEP + "\n"),
        ":3:1010: document nests deeper than 64 levels; refused",
    ),
    "100000-nested-lists": (
        _yaml(BASE + "products: " + "[" * DEEPER + "]" * DEEPER + "\n"),
        ":3:1010: document nests deeper than 64 levels; refused",
    ),
    "5000-nested-mappings": (
        _yaml(BASE + "products: " + "{a: " * DEEP + "1" + "}" * DEEP + "\n"),
        "document nests deeper than 64 levels; refused",
    ),
    "5000-nested-block-lists": (
        _yaml(BASE + "products:\n" + "- " * DEEP + "x\n"),
        ":4:129: products" + "[0]" * 64 + ": document nests deeper than 64 levels; refused",
    ),
    "5000-digit-unit-amount": (
        _yaml(
            BASE + PRODUCT + "prices:\n  - {lookup_key: k, product: prod_a, currency: usd, "
            f"unit_amount: {HUGE}}}\n"
        ),
        ":7:66: prices[0].unit_amount: a whole number of 5000 digits is too large; "
        "Stripe takes whole numbers up to 9223372036854775807",
    ),
    "5000-digit-version": (
        _yaml(f"version: {'1' * 5000}\nmode: test\n"),
        ":1:10: version: a whole number of 5000 digits is too large",
    ),
    "1000-digit-metadata-key": (
        _yaml(BASE + PRODUCT + f"    metadata:\n      {'9' * 1000}: x\n"),
        ":7:7: products[0].metadata: a whole number of 1000 digits is too large",
    ),
    "hex-beyond-int64": (
        _yaml("version: 0x" + "f" * 17 + "\nmode: test\n"),
        ":1:10: version: 295147905179352825855 is too large",
    ),
    "5MB-flow-list-of-numbers": (
        _yaml(_flow_list("1", MAX_FILE_BYTES - 64)),
        ":3:399998: products[199993]: document has more than 200000 YAML nodes; refused",
    ),
    "5MB-flow-list-of-strings": (
        _yaml(_flow_list("a" * 30, MAX_FILE_BYTES - 64)),
        "hostile.yaml: more than 100 problems; the first 100 found are listed",
    ),
    "billion-laughs": (
        _yaml(_billion_laughs()),
        ":1:1: document expands to more than 200000 YAML nodes (aliases or size); refused",
    ),
    "merge-chain-3000": (
        _yaml(_merge_chain(3000)),
        "merge keys (<<) chain deeper than 64 levels",
    ),
    "recursive-alias": (
        _yaml(BASE + "products: &a [*a]\n"),
        ":3:15: products[0]: alias *a refers to a node that contains it",
    ),
    "tag-on-mapping": (
        _yaml(BASE + "products: !!python/object:os.system {id: prod_a}\n"),
        ":3:11: products: the tag !!python/object:os.system is not allowed",
    ),
    "tag-on-sequence": (
        _yaml(BASE + "products: !!python/tuple [a]\n"),
        ":3:11: products: the tag !!python/tuple is not allowed",
    ),
    "tag-on-scalar": (
        _yaml(BASE + "products:\n  - id: !!python/name:os.system\n    name: A\n"),
        ":4:9: products[0].id: the tag !!python/name:os.system is not allowed",
    ),
    "custom-tag": (
        _yaml(BASE + "products:\n  - id: prod_a\n    name: !shell A\n"),
        ":5:11: products[0].name: the tag !shell is not allowed",
    ),
    "tag-directive-redefining-core": (
        _yaml("%TAG !! tag:evil.example,2026:\n---\n" + BASE + "products: !!str x\n"),
        ":5:11: products: the tag tag:evil.example,2026:str is not allowed",
    ),
    "core-tag-on-wrong-text": (
        _yaml(BASE + "products:\n  - id: !!int prod_a\n    name: A\n"),
        ":4:9: products[0].id: 'prod_a' is not a valid !!int",
    ),
    "binary-tag": (
        _yaml(BASE + "products: !!binary aGVsbG8=\n"),
        ":3:11: products: the tag !!binary is not allowed",
    ),
    "second-document": (
        _yaml(BASE + "---\nmode: live\n"),
        ":3:1: a second YAML document (---) was found; one is expected",
    ),
    "invalid-utf8": (
        _yaml(BASE.encode() + b"products:\n  - id: prod_\xff\n"),
        ":4:14: not UTF-8: byte 0xff cannot be decoded",
    ),
    "escape-sequence-in-key": (
        _yaml(BASE + '"\\e[2J\\e[31mowned": 1\n'),
        ":3:1: \\x1b[2J\\x1b[31mowned: key contains control characters",
    ),
    "dev-zero": (lambda tmp: Path("/dev/zero"), "/dev/zero: is a character device"),
    "dev-urandom": (lambda tmp: Path("/dev/urandom"), "/dev/urandom: is a character device"),
    "fifo": (_fifo, "hostile.yaml: is a named pipe (FIFO), not a regular file"),
    "directory": (lambda tmp: tmp, ": is a directory, not a file"),
    "sparse-file-over-the-limit": (
        _sparse(MAX_FILE_BYTES + 1, "hostile.yaml"),
        f"hostile.yaml: file is {MAX_FILE_BYTES + 1} bytes; billing.yaml is limited to",
    ),
}


@pytest.mark.parametrize("case", list(YAML_CASES))
def test_hostile_billing_yaml_is_refused_in_one_located_line(case: str, tmp_path: Path) -> None:
    make, expected = YAML_CASES[case]
    path = make(tmp_path)
    stderr = refused("validate", "-f", str(path))
    first = stderr.splitlines()[0]
    assert first.startswith(str(path)), first
    assert expected in first, first


@pytest.mark.parametrize("command", ["plan", "status", "apply --auto-approve"])
@pytest.mark.parametrize("case", ["100000-nested-lists", "tag-on-mapping", "fifo", "dev-zero"])
def test_no_request_is_sent_for_a_hostile_billing_yaml(
    case: str, command: str, emulator: Emulator, tmp_path: Path
) -> None:
    make, expected = YAML_CASES[case]
    stderr = refused(*command.split(), "-f", str(make(tmp_path)), url=emulator.url)
    assert expected in stderr
    assert emulator.stats()["requests_total"] == 0


# --- plan files ---------------------------------------------------------------------------


def _plan(text: str | bytes) -> Callable[[Path], Path]:
    return lambda tmp: _write(tmp / "plan.json", text)


def _plan_fifo(tmp: Path) -> Path:
    path = tmp / "plan.json"
    os.mkfifo(path)
    return path


PLAN_CASES: dict[str, tuple[Callable[[Path], Path], str]] = {
    "100000-nested-lists": (
        _plan("[" * DEEPER + "]" * DEEPER),
        "plan.json:1:65: nests deeper than 64 levels; refused",
    ),
    "5000-nested-objects": (
        _plan('{"a": ' * DEEP + "1" + "}" * DEEP),
        "plan.json:1:385: nests deeper than 64 levels; refused",
    ),
    "deep-after-padding": (
        _plan('{"pad": "' + "[" * 1000 + '", "changes": ' + "[" * DEEP + "]" * DEEP + "}"),
        "plan.json:1:1087: nests deeper than 64 levels; refused",
    ),
    "5000-digit-integer": (
        _plan('{"format_version": "1",\n "changes": [' + HUGE + "]}"),
        "plan.json:2:14: a whole number of 5000 digits is too large",
    ),
    "nan": (_plan('{"changes": [NaN]}'), "plan.json:1:14: NaN is not JSON"),
    "invalid-utf8": (_plan(b'{"changes": ["\xc3\x28"]}'), "plan.json:1:15: not UTF-8"),
    "not-json": (_plan("{oops"), "plan.json:1:2: not JSON"),
    "dev-zero": (lambda tmp: Path("/dev/zero"), "/dev/zero: is a character device"),
    "dev-urandom": (lambda tmp: Path("/dev/urandom"), "/dev/urandom: is a character device"),
    "fifo": (_plan_fifo, "plan.json: is a named pipe (FIFO), not a regular file"),
    "directory": (lambda tmp: tmp, ": is a directory, not a file"),
    "sparse-file-over-the-limit": (
        _sparse(MAX_PLAN_BYTES + 1, "plan.json"),
        f"plan.json: plan file is {MAX_PLAN_BYTES + 1} bytes; a plan is limited to",
    ),
}


@pytest.mark.parametrize("case", list(PLAN_CASES))
def test_hostile_plan_file_is_refused_before_any_request(
    case: str, emulator: Emulator, tmp_path: Path
) -> None:
    make, expected = PLAN_CASES[case]
    path = make(tmp_path)
    stderr = refused("apply", str(path), "-f", EXAMPLE, "--auto-approve", url=emulator.url)
    (line,) = stderr.splitlines()
    assert line.startswith(f"Error: {path}"), line
    assert expected in line, line
    assert emulator.stats()["requests_total"] == 0


# --- keys ---------------------------------------------------------------------------------

STRIPPED_KEYS = [k for k in PASTED_SECRETS if k.startswith((" sk_test_", "sk_test_pasted"))]


@pytest.mark.parametrize("key", STRIPPED_KEYS, ids=["newline", "crlf-and-space"])
@pytest.mark.parametrize("command", ["plan", "status", "apply --auto-approve", "import"])
def test_a_pasted_key_with_whitespace_around_it_works(
    key: str, command: str, emulator: Emulator
) -> None:
    config = [] if command == "import" else ["-f", EXAMPLE]
    result = stripe_reconcile(*command.split(), *config, url=emulator.url, key=key)
    assert result.returncode == 0, result.stderr
    assert key.strip() not in result.stdout + result.stderr
    assert emulator.stats()["requests_total"] > 0


@pytest.mark.parametrize("command", ["plan", "status", "apply --auto-approve", "import"])
def test_a_key_with_a_line_break_inside_is_refused_by_its_prefix_only(
    command: str, emulator: Emulator
) -> None:
    (inner,) = [k for k in PASTED_SECRETS if "\n" in k.strip()]
    config = [] if command == "import" else ["-f", EXAMPLE]
    stderr = refused(*command.split(), *config, url=emulator.url, key=inner)
    assert stderr.strip() == (
        "Error: STRIPE_API_KEY (sk_test_…) holds a space, a line break, a control or a "
        "non-ASCII character inside the key; copy the key again"
    )
    assert emulator.stats()["requests_total"] == 0


def test_a_pasted_live_key_is_refused_without_showing_it(emulator: Emulator) -> None:
    (live,) = [k for k in PASTED_SECRETS if k.startswith("sk_live_")]
    stderr = refused("plan", "-f", EXAMPLE, url=emulator.url, key=live)
    assert f"STRIPE_API_KEY is a live key but {EXAMPLE} says mode: test" in stderr
    assert emulator.stats()["requests_total"] == 0


def test_a_github_token_with_whitespace_never_shows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = _write(tmp_path / "comment.md", "plan output\n")
    pasted, inner = [k for k in PASTED_SECRETS if k.startswith("ghp_")]
    monkeypatch.setenv("GITHUB_API_URL", "http://127.0.0.1:9")  # discard port: refused
    monkeypatch.setenv("GITHUB_TOKEN", pasted)
    stderr = refused("github", "comment", str(body), "--repo", "o/r", "--pr", "1")
    assert stderr.startswith("Error: GitHub GET /repos/o/r/issues/1/comments")
    monkeypatch.setenv("GITHUB_TOKEN", inner)
    stderr = refused("github", "comment", str(body), "--repo", "o/r", "--pr", "1")
    assert stderr.strip() == (
        "Error: GITHUB_TOKEN (ghp_…) holds a space, a line break, a control or a "
        "non-ASCII character inside the key; copy the key again"
    )


# --- the emulator's --db ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda tmp: tmp, "it is a directory"),
        (lambda tmp: tmp / "missing" / "state.db", "unable to open database file"),
        (lambda tmp: _write(tmp / "state.db", "not a database\n" * 100), "file is not a database"),
        (lambda tmp: Path("/dev/zero"), "it is not a regular file"),
    ],
    ids=["directory", "unwritable-path", "not-sqlite", "device"],
)
def test_an_unusable_emulator_db_is_one_line_and_exit_1(
    make: Callable[[Path], Path], reason: str, tmp_path: Path
) -> None:
    path = make(tmp_path)
    stderr = refused("emulator", "--port", "0", "--db", str(path))
    assert stderr.splitlines() == [
        f"Error: --db {path}: cannot be used as the emulator's database: {reason}"
    ]


# --- GitHub comment and issue bodies ------------------------------------------------------


@pytest.mark.parametrize("command", ["comment", "drift-issue"])
@pytest.mark.parametrize("source", ["/dev/zero", "fifo", "directory"])
def test_a_hostile_body_file_is_refused_before_github_is_called(
    command: str, source: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if source == "fifo":
        path = tmp_path / "body.md"
        os.mkfifo(path)
    else:
        path = tmp_path if source == "directory" else Path(source)
    monkeypatch.setenv("GITHUB_API_URL", "http://127.0.0.1:9")  # discard port: never reached
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_notarealtoken0000000000000000000000")
    extra = ["--pr", "1"] if command == "comment" else []
    stderr = refused("github", command, str(path), "--repo", "o/r", *extra)
    (line,) = stderr.splitlines()
    assert line.startswith(f"Error: {path}"), line
    assert "GitHub" not in line


def test_a_plan_with_a_huge_format_version_is_refused_briefly(
    emulator: Emulator, tmp_path: Path
) -> None:
    path = _write(tmp_path / "plan.json", '{"format_version": "' + "9" * 100_000 + '"}')
    stderr = refused("apply", str(path), "-f", EXAMPLE, "--auto-approve", url=emulator.url)
    (line,) = stderr.splitlines()
    assert "is not supported" in line
    assert len(line) < 400, len(line)
