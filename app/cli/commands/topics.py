"""`traindeck topics list|show|add|remove|test`: notification topics (apprise URLs in
the config file, mirrored into the database for the TUI)."""

from __future__ import annotations

import argparse

from app.cli.common import AddCommand, actions, open_core, print_records, print_result, wants_json
from app.cli.output import print_json


def cmd_topics_list(args: argparse.Namespace) -> int:
    from app.config import load_settings
    from app.notify import list_topics

    topics = list_topics(load_settings())
    return print_records(args, topics, ["topic", "urls", "description"],
                         lambda t: (t.name, len(t.urls), t.description))


def cmd_topics_show(args: argparse.Namespace) -> int:
    from app.config import load_settings
    from app.notify import get_topic

    topic = get_topic(load_settings(), args.name)
    return print_result(args, topic.to_dict(), "\n".join(
        [topic.name + (f": {topic.description}" if topic.description else ""),
         *(f"  {url}" for url in topic.urls)]))


def cmd_topics_add(args: argparse.Namespace) -> int:
    from app.notify import add_topic

    topic = add_topic(args.name, args.urls, args.description or "", replace=args.replace)
    open_core(reconcile=False)  # mirrors the topics into the database for the TUI
    return print_result(args, topic.to_dict(),
                        f"{'saved' if args.replace else 'added'} topic {topic.name!r} "
                        f"({len(topic.urls)} URL{'s' if len(topic.urls) != 1 else ''})")


def cmd_topics_remove(args: argparse.Namespace) -> int:
    from app.notify import remove_topic

    remove_topic(args.name)
    open_core(reconcile=False)
    return print_result(args, {"removed": args.name}, f"removed topic {args.name!r}")


def cmd_topics_test(args: argparse.Namespace) -> int:
    from app.notify import send_topic_test

    result = send_topic_test(open_core(reconcile=False), args.name)
    if wants_json(args):
        print_json(result.to_dict())
    else:
        print(result.message.removeprefix("test to "))
    return 0 if result.delivered else 1


def add_commands(add: AddCommand) -> None:
    """Register `topics`: an action word next, `--json` before or after it."""
    action = actions(add("topics", cmd_topics_list, "manage notification topics"), "topics")
    action("list", cmd_topics_list, "list topics (URLs redacted)")
    action("show", cmd_topics_show, "show a topic's URLs (redacted)").add_argument("name")
    p = action("add", cmd_topics_add, "add a topic of apprise URLs to the config file")
    p.add_argument("name", help="topic name")
    p.add_argument("urls", nargs="+", metavar="URL", help="apprise URL (json://, ntfy://, ...)")
    p.add_argument("--description", help="shown in the wizard")
    p.add_argument("--replace", action="store_true", help="replace an existing topic")
    action("remove", cmd_topics_remove, "remove a topic from the config file"
           ).add_argument("name")
    action("test", cmd_topics_test, "send a test message to a topic").add_argument("name")
