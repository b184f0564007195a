"""``make fuzz``: a bounded-time fuzz run over every parser of untrusted input.

It drives the targets of ``tests/test_robustness.py`` (the HTTP decoder, WWW-Authenticate, token
and helper JSON, docker config, manifests and indexes, URIs, references, digests) with
hypothesis for as long as ``--seconds`` allows, round-robin in chunks, each chunk with fresh
random seeds and no example database, so every round explores new inputs. The test suite runs
150 examples per target; this runs thousands.

It prints how many inputs each target got. Any exception other than the package's own
``FetchError`` (or a broken property the target asserts) stops the run: the target, the input
(shrunk by hypothesis to a small one) and the traceback are printed, and the exit status is 1.

    python scripts/fuzz.py                 # 60 s in all
    python scripts/fuzz.py --seconds 600 --target uri --target digest
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from collections.abc import Sequence
from typing import Final

import attrs
import repo_root  # noqa: F401  (puts the repository root on sys.path, for tests)
from hypothesis import HealthCheck, Phase, Verbosity, given, settings
from hypothesis import seed as hypothesis_seed

# The robustness suite's targets: one definition serves the tests and the fuzz run.
from tests.test_robustness import TARGETS, Target

DEFAULT_SECONDS: Final = 60.0
# Examples per target per round: long enough to amortise hypothesis' set-up, short enough that
# every target gets its turn many times within a minute.
CHUNK: Final = 200
# The longest rendering of a failing input that is printed in full.
MAX_SHOWN: Final = 1000

EXIT_FOUND: Final = 1


@attrs.define
class Progress:
    """What one target got so far."""

    inputs: int = 0
    seconds: float = 0.0


@attrs.frozen
class Finding:
    target: str
    value: object
    error: BaseException


def run_chunk(target: Target, progress: Progress, *, examples: int, seed: int) -> Finding | None:
    """``examples`` fresh inputs for ``target``; the shrunk failing input, if one failed."""
    failing: list[object] = []

    def one(value: object) -> None:
        progress.inputs += 1
        try:
            target.check(value)
        except BaseException:
            # Hypothesis replays the smallest failing input last: keep the latest.
            failing[:] = [value]
            raise

    test = hypothesis_seed(seed)(
        settings(
            max_examples=examples,
            deadline=None,
            database=None,
            phases=[Phase.generate, Phase.shrink],
            suppress_health_check=list(HealthCheck),
            print_blob=False,
            verbosity=Verbosity.quiet,  # the failing input is printed below, shortened
        )(given(target.inputs)(one))
    )
    started = time.monotonic()
    try:
        test()
    except Exception as exc:  # what hypothesis re-raises: the target's own exception (or group)
        return Finding(target.name, failing[0] if failing else None, exc)
    finally:
        progress.seconds += time.monotonic() - started
    return None


def fuzz(
    targets: Sequence[Target], *, seconds: float, seed: int
) -> tuple[dict[str, Progress], Finding | None]:
    """Round-robin over ``targets`` until ``seconds`` have passed or one of them fails."""
    progress = {target.name: Progress() for target in targets}
    deadline = time.monotonic() + seconds
    round_ = 0
    while time.monotonic() < deadline:
        for target in targets:
            if time.monotonic() >= deadline:
                break
            chunk_seed = seed + round_ * len(targets) + targets.index(target)
            found = run_chunk(target, progress[target.name], examples=CHUNK, seed=chunk_seed)
            if found is not None:
                return progress, found
        round_ += 1
    return progress, None


def report(progress: dict[str, Progress], elapsed: float) -> str:
    width = max(len(name) for name in progress)
    lines = [f"{'target':<{width}}  {'inputs':>8}  {'seconds':>7}"]
    for name, done in progress.items():
        lines.append(f"{name:<{width}}  {done.inputs:>8}  {done.seconds:>7.1f}")
    total = sum(done.inputs for done in progress.values())
    lines.append(f"{'all':<{width}}  {total:>8}  {elapsed:>7.1f}")
    return "\n".join(lines)


def show(finding: Finding) -> str:
    shown = repr(finding.value)
    if len(shown) > MAX_SHOWN:
        shown = f"{shown[:MAX_SHOWN]}... ({len(shown)} characters)"
    trace = "".join(traceback.format_exception(finding.error))
    return f"target {finding.target} failed on input:\n{shown}\n\n{trace}"


def main(argv: Sequence[str] | None = None) -> int:
    targets = TARGETS
    names = [target.name for target in targets]
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--seconds",
        type=float,
        default=DEFAULT_SECONDS,
        help=f"time budget for the whole run (default {DEFAULT_SECONDS:g})",
    )
    parser.add_argument(
        "--target",
        action="append",
        choices=names,
        help="fuzz only this target (repeatable; default: all)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=None,
        help="seed of the first chunk, to repeat a run (default: random)",
    )
    args = parser.parse_args(argv)
    if args.seconds <= 0:
        parser.error("--seconds must be positive")
    chosen = [target for target in targets if args.target is None or target.name in args.target]
    seed = args.seed if args.seed is not None else time.time_ns() % 2**32
    print(f"fuzzing {len(chosen)} targets for {args.seconds:g} s (seed {seed})", flush=True)
    started = time.monotonic()
    progress, finding = fuzz(chosen, seconds=args.seconds, seed=seed)
    print(report(progress, time.monotonic() - started))
    if finding is not None:
        print(show(finding), file=sys.stderr)
        return EXIT_FOUND
    print("no unexpected exception")
    return 0


if __name__ == "__main__":
    sys.exit(main())
