#!/usr/bin/env python
"""Adversarial GraphQL documents: how long the server takes to refuse (or plan) each one.

Prints, for each named document, what happened and how long it took before anything runs:
with strawberry's stock limiters (depth, aliases, tokens, its parser and validation caches and
graphql-core's default overlap budget: the baseline, measured in this same run) and with ours
(`patone.graphql.limits`: one memoised walk first, then validation only of what passed). The
goal is < 50 ms for each. It prints figures; it does not pass or fail on timings, and exits
non-zero only when a document is not refused the way it should be.

    python bench/graphql_adversarial.py                      # fan-outs of 20 fragments, 5 runs
    python bench/graphql_adversarial.py --smoke --json /tmp/adversarial.json   # CI: small

Everything runs in this process on the real schema (`build_schema`), with no database: an
extension at the end of the list stops each operation where execution would begin, so the time
is parsing, limits and validation only, which is all a refused document costs and all that
happens before a planned one runs. Each run's text is new (a comment with a counter), so the
parser and validation caches never answer for an attacker who varies the text.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from figures import make_console, phase, verdict
from graphql import ExecutionResult, get_introspection_query
from graphql.validation.rules import overlapping_fields_can_be_merged as overlap
from rich.console import Console
from rich.table import Table
from strawberry import Schema
from strawberry.extensions import (
    AddValidationRules,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    ParserCache,
    QueryDepthLimiter,
    SchemaExtension,
    ValidationCache,
)

from patone.graphql.limits import MAX_ALIASES, MAX_DEPTH, MAX_TOKENS, OVERLAP_BUDGET
from patone.graphql.schema import build_schema

GOAL_MS = 50.0
STOCK_OVERLAP_BUDGET = 500_000  # graphql-core's default
# A baseline run of a fan-out doubles with each fragment: above this many it would run for
# minutes to hours, so only ours is measured.
BASELINE_MAX_FRAGMENTS = 22
BOARD = """query Board($after: String) { serviceRequests(first: 50, after: $after,
  filter: {openOnly: true}) { edges { cursor node { id number status priority createdAt
  customer { id name phone } vehicle { make model plate } serviceType { code name }
  driver { id name } } } pageInfo { hasNextPage endCursor } } }"""


class PlanOnly(SchemaExtension):
    """Stop where execution would begin: a result set here makes strawberry skip execution."""

    def on_execute(self) -> Iterator[None]:
        self.execution_context.result = ExecutionResult(data={"planned": True})
        yield


def fan_out(fragments: int, leaf: str = "viewer { tenant }", cycle: bool = False) -> str:
    """`query { ...F<n> }`, each fragment spreading the one before it twice (2^n leaves); with
    `cycle`, the first fragment spreads the last one, closing a loop."""
    back = f" ...F{fragments}" if cycle else ""
    lines = [f"query {{ ...F{fragments} }}", f"fragment F0 on Query {{{back} {leaf} }}"]
    lines += [
        f"fragment F{i} on Query {{ ...F{i - 1} ...F{i - 1} }}" for i in range(1, fragments + 1)
    ]
    return "\n".join(lines)


def fragment_depth(levels: int) -> str:
    lines = [f"query {{ ...F{levels} }}", "fragment F0 on Query { __typename }"]
    lines += [f"fragment F{i} on Query {{ a {{ ...F{i - 1} }} }}" for i in range(1, levels + 1)]
    return "\n".join(lines)


@dataclass(frozen=True)
class Case:
    name: str
    document: str
    expected: str  # the code we refuse it with, or "planned"
    fragments: int = 0  # a fan-out's size, to skip baselines that would not finish


def cases(fan: int) -> list[Case]:
    return [
        Case(f"fan-out x2, {fan} fragments", fan_out(fan), "cost_limit_exceeded", fan),
        Case("fan-out x2, 40 fragments", fan_out(40), "cost_limit_exceeded", 40),
        Case(
            f"fan-out of aliases, {fan} fragments",
            fan_out(fan, leaf="a: __typename"),
            "alias_limit_exceeded",
            fan,
        ),
        Case(
            f"fragment cycle behind a fan-out of {fan}",
            fan_out(fan, cycle=True),
            "invalid_document",
            fan,
        ),
        Case(
            "deep nesting, 150 fields",
            "{ " + "a { " * 150 + "b" + " }" * 151,
            "depth_limit_exceeded",
        ),
        Case("deep nesting through 60 fragments", fragment_depth(60), "depth_limit_exceeded"),
        Case(
            "600 aliases",
            "{ " + " ".join(f"a{i}: __typename" for i in range(600)) + " }",
            "alias_limit_exceeded",
        ),
        Case(
            "long: 490 x viewer { tenant }",
            "{ " + " ".join("viewer { tenant }" for _ in range(490)) + " }",
            "query_too_complex",
        ),
        Case(
            "long: 1,990 x __typename",
            "{ " + " ".join("__typename" for _ in range(1990)) + " }",
            "query_too_complex",
        ),
        Case(
            "1 MB of comments around { __typename }",
            "#" * 999_000 + "\n{ __typename }",
            "syntax_error",
        ),
        Case(
            "49,000 characters of comments (the most allowed)",
            "#" * 49_000 + "\n{ __typename }",
            "planned",
        ),
        Case("the dispatch board (normal)", BOARD, "planned"),
        Case(
            "GraphiQL's introspection (normal)",
            get_introspection_query(descriptions=True),
            "planned",
        ),
    ]


def stock_extensions() -> list[Callable[[], SchemaExtension] | type[SchemaExtension]]:
    """The limiters strawberry ships, configured as ours are (the baseline)."""
    rules = [
        *QueryDepthLimiter(max_depth=MAX_DEPTH).validation_rules,
        *MaxAliasesLimiter(max_alias_count=MAX_ALIASES).validation_rules,
    ]
    return [
        lambda: AddValidationRules(rules),
        lambda: MaxTokensLimiter(max_token_count=MAX_TOKENS),
        lambda: ParserCache(maxsize=512),
        lambda: ValidationCache(maxsize=512),
        PlanOnly,
    ]


def outcome(result: Any) -> str:
    if not result.errors:
        return "planned"
    error = result.errors[0]
    code = (error.extensions or {}).get("code")
    return str(code) if code else error.message[:40].rstrip()


async def timed(
    schema: Schema, document: str, runs: int, budget: int, warm_up: bool = True
) -> tuple[str, list[float], list[float]]:
    """What `schema` made of the document, and the wall-clock and CPU milliseconds of each run
    (fresh text each), after one run not counted (the first pays for the code path's imports
    and caches). CPU time leaves out what other processes took from this one meanwhile."""
    overlap.MAX_COMPLEXITY_BUDGET = budget
    wall: list[float] = []
    cpu: list[float] = []
    seen = "?"
    for run in range(-1 if warm_up else 0, runs):
        text = f"{document}\n# run {run} {time.perf_counter_ns()}"
        started, started_cpu = time.perf_counter(), time.process_time()
        result = await schema.execute(text)
        if run >= 0:
            wall.append((time.perf_counter() - started) * 1000)
            cpu.append((time.process_time() - started_cpu) * 1000)
        seen = outcome(result)
    return seen, wall, cpu


async def measure(args: argparse.Namespace, console: Console) -> dict[str, Any]:
    # strawberry logs every refusal (with its traceback) at ERROR: not what is measured here.
    logging.getLogger("strawberry.execution").disabled = True
    phase(console, "schemas: ours and strawberry's stock limiters")
    ours = build_schema(third_party=False)
    ours.extensions = [*ours.extensions, PlanOnly]
    stock = build_schema(third_party=False)
    stock.extensions = stock_extensions()
    gc.freeze()  # as the server does once started (patone/app.py)
    figures: dict[str, Any] = {"goal_ms": GOAL_MS, "cases": [], "failures": []}
    for case in cases(args.fragments):
        phase(console, case.name)
        after, after_ms, after_cpu = await timed(ours, case.document, args.runs, OVERLAP_BUDGET)
        before, before_ms = None, None
        if case.fragments <= BASELINE_MAX_FRAGMENTS:
            # One run, no warm-up: a big fan-out takes seconds, so warming up would double it.
            before, before_ms, _ = await timed(
                stock, case.document, 1, STOCK_OVERLAP_BUDGET, warm_up=case.fragments < 16
            )
        entry = {
            "name": case.name,
            "expected": case.expected,
            "after": after,
            "after_ms_median": statistics.median(after_ms),
            "after_ms_max": max(after_ms),
            "after_cpu_ms_median": statistics.median(after_cpu),
            "before": before,
            "before_ms": before_ms[0] if before_ms else None,
        }
        figures["cases"].append(entry)
        if after != case.expected:
            figures["failures"].append(f"{case.name}: {after}, expected {case.expected}")
    overlap.MAX_COMPLEXITY_BUDGET = OVERLAP_BUDGET
    return figures


def report(figures: dict[str, Any], console: Console, runs: int) -> None:
    table = Table(title=f"time to refuse or plan (ours: median, max and median CPU of {runs} runs)")
    columns = ("document", "stock: outcome", "stock ms", "ours: outcome", "ours ms", "max ms")
    for column in (*columns, "CPU ms"):
        table.add_column(column, justify="right" if "ms" in column else "left")
    table.add_column("< 50 ms (median)")
    for case in figures["cases"]:
        before_ms = case["before_ms"]
        table.add_row(
            case["name"],
            case["before"] or "not run (hours)",
            f"{before_ms:,.1f}" if before_ms is not None else "-",
            case["after"],
            f"{case['after_ms_median']:.2f}",
            f"{case['after_ms_max']:.2f}",
            f"{case['after_cpu_ms_median']:.2f}",
            verdict(case["after_ms_median"] < GOAL_MS),
        )
    console.print(table)
    worst = max(case["after_ms_median"] for case in figures["cases"])
    slowest = max(case["after_ms_max"] for case in figures["cases"])
    console.print(
        f"summary: {len(figures['cases'])} documents, slowest refusal or plan {worst:.1f} ms "
        f"median (goal < {GOAL_MS:.0f} ms: {verdict(worst < GOAL_MS)}), {slowest:.1f} ms at "
        "worst (a garbage collection, or other processes on the cores, can land in any run)",
        highlight=False,
    )
    for failure in figures["failures"]:
        console.print(f"[red]not refused as expected: {failure}[/red]", highlight=False)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--smoke", action="store_true", help="fan-outs of 14, 2 runs (CI)")
    parser.add_argument("--fragments", type=int, default=None, help="fan-out size (20)")
    parser.add_argument("--runs", type=int, default=None, help="runs of ours per document (5)")
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    args = parser.parse_args(argv)
    args.fragments = args.fragments or (14 if args.smoke else 20)
    args.runs = args.runs or (2 if args.smoke else 5)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    console = make_console(200)
    figures = asyncio.run(measure(args, console))
    report(figures, console, args.runs)
    if args.json:
        with open(args.json, "w") as out:
            json.dump(figures, out, indent=2)
    return 1 if figures["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
