"""The reading commands: `list`, `show`, `wait`, `logs` and `compare`.

`app.cli.main` builds only this module's parsers for them (`add_commands`), so that
a cold read imports no other command's module.

Each reads the default SQLite file with the standard library first (`app.store.quicklist`: no
SQLAlchemy, no pydantic, no reconciliation) and prints the same read models as the core
would hand it; the whole core, reconciled first, answers whenever the cold path cannot
(another database configured, another schema, a version whose supervisor is gone, a
name not found, a version still to wait for).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from app.cli.common import EXIT_ERROR, AddCommand, count, job_args, open_core, print_records
from app.cli.output import format_duration, format_time, format_value, print_json, print_table
from app.formatting import (
    describe_code,
    describe_devices,
    describe_resource_limits,
    shorten,
)
from app.readmodels import (
    ACTIVE_STATUS_VALUES,
    DEFAULT_DESCENDING,
    format_resources,
    gpu_compare_rows,
)

T = TypeVar("T")


def _cold(read: Callable[[Path], T]) -> T | None:
    """`read` over the default database file with the standard library only (`app.store.quicklist`:
    no core, no reconciliation), or None when the core must answer: another database is
    configured, the schema differs, or what is read needs reconciling first."""
    from app.store import quicklist

    path = quicklist.default_db_path()
    if path is None:
        return None
    try:
        return read(path)
    except quicklist.QuickListError:
        return None


def cmd_list(args: argparse.Namespace) -> int:
    from app.store import quicklist

    query = {"search": args.filter or "", "status": args.status, "sort": args.sort,
             "descending": DEFAULT_DESCENDING[args.sort] != args.reverse, "limit": args.limit}

    def cold(path: Path) -> list[Any]:
        rows = quicklist.list_jobs_fast(path, **query)
        quicklist.require_supervisors_of_jobs(
            path, [r.id for r in rows if r.status in ACTIVE_STATUS_VALUES])
        return rows

    rows = _cold(cold)
    if rows is None:
        from app.queries import list_jobs

        rows = list_jobs(open_core().db, **query)
    return print_records(
        args, rows, ["job", "version", "status", "engine", "resources", "created", "duration"],
        lambda r: (r.name, r.version, r.status, r.engine,
                   format_resources(r.gpus, r.nodes, r.runtime), format_time(r.created),
                   format_duration(_duration(r.started, r.finished))))


def _duration(started: Any, finished: Any) -> float | None:
    if started is None:
        return None
    return ((finished or datetime.now(UTC)) - started).total_seconds()


def cmd_show(args: argparse.Namespace) -> int:
    from app.store import quicklist

    def cold(path: Path) -> tuple[list[Any], list[Any]]:
        versions = quicklist.job_versions_fast(path, args.job, args.version)
        return versions, (quicklist.version_events_fast(path, versions[-1].id)
                          if args.events else [])

    found = _cold(cold)
    if found is None:
        from app.queries import job_versions, version_events, version_info

        db = open_core().db
        versions = ([version_info(db, args.job, args.version)] if args.version
                    else job_versions(db, args.job))
        found = versions, (version_events(db, versions[-1].id)
                           if args.events and versions else [])
    versions, events = found
    if args.json:
        print_json({"job": args.job, "versions": [v.to_dict() for v in versions]})
        return 0
    for v in versions:
        print(f"{v.job} {v.version}  {v.status}" + (f"  ({v.reason})" if v.reason else ""))
        print(f"  parent      {v.parent or '-'}")
        print(f"  engine      {v.engine}  runtime {v.runtime}  pool {v.pool}  "
              f"gpus {v.gpus} × {v.nodes} node(s)" +
              (f"  allocated [{v.allocated_gpus}]" if v.allocated_gpus else ""))
        devices = describe_devices(v.allocated_gpus, v.allocated_uuids)
        if devices:
            print(f"  devices     {devices}")
        print(f"  created     {format_time(v.created)}  started {format_time(v.started)}  "
              f"finished {format_time(v.finished)}  duration {format_duration(v.duration)}")
        if v.exit_code is not None:
            print(f"  exit code   {v.exit_code}")
        params = " ".join(f"{k}={format_value(x)}" for k, x in v.parameters.items())
        print(f"  parameters  {params or '-'}")
        metrics = " ".join(f"{k}={format_value(x)}" for k, x in v.metrics.items())
        print(f"  metrics     {metrics or '-'}")
        limits = describe_resource_limits(v.spec.get("resources") or {}, v.runtime)
        if limits:
            print(f"  limits      {limits}")
        if v.code:
            print(f"  code        {describe_code(v.code)}")
        print(f"  output      {v.output}")
        print(f"  logs        {v.log_dir}")
        if v is versions[-1]:
            for e in events:
                print(f"  {format_time(e.time)}  {e.kind:<12} {e.message}")
    return 0


def cmd_wait(args: argparse.Namespace) -> int:
    from app.store import quicklist

    cold = _cold(lambda path: quicklist.job_versions_fast(path, args.job, args.version)[-1])
    if cold is None or cold.status in ACTIVE_STATUS_VALUES:  # still to wait for: the core
        from app.runtime.control import wait_final
        from app.store.models import version_label

        v = wait_final(open_core(), args.job, args.version, args.timeout)
        label, status, reason, code = version_label(v.number), v.status, v.reason, v.exit_code
    else:
        label, status, reason, code = cold.version, cold.status, cold.reason, cold.exit_code
    if args.json:
        print_json({"job": args.job, "version": label, "status": status, "reason": reason,
                    "exit_code": code})
    else:
        print(f"{args.job} {label} {status}" + (f": {reason}" if reason else ""))
    return 0 if status == "succeeded" else EXIT_ERROR


def cmd_logs(args: argparse.Namespace) -> int:
    from app.runtime.logview import print_logs, print_rank_logs
    from app.store import quicklist

    found = None if args.follow else _cold(
        lambda path: quicklist.rank_logs_fast(path, args.job, args.version))
    if found is None:
        return print_logs(open_core(), args.job, args.version, rank=args.rank,
                          follow=args.follow, tail_lines=args.tail, raw=args.raw)
    print_rank_logs(*found, args.job, rank=args.rank, tail_lines=args.tail, raw=args.raw)
    return 0


def _code_changes(snapshots: dict[str, Any], labels: list[str]
                  ) -> dict[str, Sequence[tuple[str, str]]]:
    """How each version's code (`snapshots` by label) differs from the first one's: label
    → [(path, `added` | `removed` | `modified`)], for versions whose snapshots differ."""
    first = snapshots.get(labels[0])
    if first is None:
        return {}
    from app.store.snapshot import changed_files

    return {label: changed_files(first, snapshots[label]) for label in labels[1:]
            if label in snapshots and snapshots[label].id != first.id}


def _two_or_more(job: str, versions: list[Any]) -> list[Any]:
    if len(versions) < 2:
        from app.errors import TraindeckError

        raise TraindeckError(f"compare: needs at least two versions ({job} has "
                             f"{' '.join(v.version for v in versions) or 'none'} here)")
    return versions


def cmd_compare(args: argparse.Namespace) -> int:
    from app.metrics import compare_versions
    from app.store import quicklist

    def cold(path: Path) -> tuple[list[Any], dict[int, Any], dict[str, Any]]:
        versions = _two_or_more(args.job, quicklist.job_versions_fast(
            path, args.job, labels=args.versions, status=args.status))
        return (versions, quicklist.gpu_summary_fast(path, [v.id for v in versions]),
                quicklist.code_snapshots_fast(path, versions))

    found = _cold(cold)
    if found is None:
        from app.jobs import version_snapshots
        from app.queries import job_versions
        from app.runtime.sampler import gpu_summary

        ctx = open_core()
        versions = _two_or_more(args.job, job_versions(ctx.db, args.job, status=args.status,
                                                       labels=args.versions))
        found = (versions, gpu_summary(ctx.db, [v.id for v in versions]),
                 version_snapshots(ctx, args.job, [v.version for v in versions]))
    versions, gpus, snapshots = found
    result = compare_versions(args.job, versions)
    changes = _code_changes(snapshots, result.versions)
    if args.json:
        print_json({**result.to_dict(), "code_changes": {
            label: [{"path": p, "change": c} for p, c in changed]
            for label, changed in changes.items()},
            "gpu": {label: gpus.get(vid, {})
                    for label, vid in zip(result.versions, result.version_ids, strict=True)}})
        return 0
    names = result.parameter_names if args.all else result.differing
    rows: list[list[str]] = [["status", *result.statuses]]
    if any(status == "failed" for status in result.statuses):
        rows.append(["reason", *(shorten(reason, 40) if status == "failed" else ""
                                 for status, reason in zip(result.statuses, result.reasons,
                                                           strict=True))])
    rows += [[f"param {n}", *map(format_value, result.parameters[n])] for n in names]
    rows += [[f"spec {path}", *(shorten(format_value(x), 40) for x in values)]
             for path, values in result.spec_changes.items()]
    for name in result.metric_names:
        best = result.best[name]
        rows.append([name, *(format_value(x) + (" *" if i in best else "")
                             for i, x in enumerate(result.metrics[name]))])
    rows += [[title, *map(format_value, values)]
             for title, values in gpu_compare_rows(gpus, result.version_ids)]
    print_table(["", *result.versions], rows)
    if any(result.best[name] for name in result.metric_names):
        print("* the best value of a metric")
    hidden = len(result.parameter_names) - len(names)
    if not args.all and hidden:
        print(f"({hidden} equal parameter{'s' if hidden != 1 else ''} hidden; --all shows them)")
    for label, changed in changes.items():
        files = ", ".join(f"{path} ({change})" for path, change in changed[:10])
        more = f" and {len(changed) - 10} more" if len(changed) > 10 else ""
        print(f"code of {label} differs from {result.versions[0]}'s: {files}{more}")
    return 0


def add_commands(add: AddCommand) -> None:
    """Register `list`, `show`, `wait`, `logs` and `compare` (`add`: see `AddCommand`)."""
    p = add("list", cmd_list, "list jobs with their latest version")
    p.add_argument("--filter", "-f", help="text in the name or description")
    p.add_argument("--status", help="latest version's status")
    p.add_argument("--sort", choices=["updated", "created", "name", "status"], default="updated")
    p.add_argument("--limit", type=count, default=1000, metavar="N", help="at most N jobs")
    p.add_argument("--reverse", action="store_true",
                   help="the other way round (default: newest first for updated and "
                        "created, A to Z for name and status)")
    p = add("show", cmd_show, "show a job's versions, or one version")
    job_args(p, "one version (default: all)")
    p.add_argument("--events", action="store_true",
                   help="list the events of the version (default: the latest)")
    p = add("wait", cmd_wait, "wait until a version ends; exit 0 only if it succeeded")
    job_args(p)
    p.add_argument("--timeout", type=float, help="seconds to wait at most")
    p = add("logs", cmd_logs, "print a version's logs", json_out=False)
    job_args(p)
    p.add_argument("--follow", "-f", action="store_true", help="keep printing new lines")
    p.add_argument("--rank", type=count, help="one rank only (default: all)")
    p.add_argument("--tail", type=count, metavar="N", help="only the last N lines")
    p.add_argument("--raw", action="store_true",
                   help="print the job's control characters (escape sequences) as they are")
    p = add("compare", cmd_compare, "compare versions on parameters and metrics")
    p.add_argument("job", help="job name")
    p.add_argument("versions", nargs="*", help="versions (default: all)")
    p.add_argument("--status", help="only versions with this status")
    p.add_argument("--all", action="store_true", help="show equal parameters too")
