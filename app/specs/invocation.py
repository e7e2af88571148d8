"""What a rank runs: the argv and environment of the user's script, from its spec.

Pure functions: given the spec, the folders as the rank sees them and how the boot file
is started, they say what to run. `app.runtime.plan.build_plan` maps the folders, adds
its own variables and hands the result to an executor; `traindeck validate` prints it.

Conventions (`arguments:` on the framework or custom-image algorithm):
- `modelarts` (default with a boot file): `--data_url=<dir>/ --train_url=<dir>/` then
  `--name=value` per run parameter, as ModelArts calls a boot file;
- `plain`: only `--name=value`; a `true` boolean is a bare `--name`, `false` is left out;
- `none` (default with a `command`): nothing appended.

Items of a `command` may hold `{data_url}`, `{train_url}` and `{<parameter>}`
placeholders; `{{` and `}}` stand for literal braces. Argv items never pass through a
shell. The data and output folders are always in the environment as well.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from app.specs.spec import ArgumentStyle, JobSpec, ParamValue, format_parameter

FOLDERS = ("data_url", "train_url")
"""Placeholders that name the data and output folders (before any run parameter)."""
_TOKEN = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")


@dataclass(frozen=True)
class Invocation:
    """The argv of the user's program and the variables the spec adds for every rank."""

    argv: list[str]
    env: dict[str, str]


def folder_url(path: str) -> str:
    """A folder as ModelArts passes it: with one trailing `/`."""
    return path.rstrip("/") + "/"


def placeholders(item: str) -> list[str]:
    """The placeholder names in a command item; ValueError for an unmatched brace."""
    names = []
    for match in _TOKEN.finditer(item):
        token = match.group(0)
        if token in ("{", "}"):
            raise ValueError(f"unmatched {token!r} (write {token * 2} for a literal brace)")
        if match.group(1) is not None:
            names.append(match.group(1))
    return names


def placeholder_problem(item: str, known: set[str]) -> str | None:
    """Why a command item cannot be filled in from `known` names, or None."""
    try:
        names = placeholders(item)
    except ValueError as exc:
        return str(exc)
    unknown = [name for name in names if name not in known]
    if unknown:
        return (f"unknown placeholder {{{unknown[0]}}} "
                f"(known: {', '.join(sorted(known, key=_known_order))})")
    return None


def _known_order(name: str) -> tuple[int, str]:
    return (FOLDERS.index(name) if name in FOLDERS else len(FOLDERS), name)


def fill(item: str, values: Mapping[str, str]) -> str:
    """A command item with its placeholders replaced (KeyError for an unknown one)."""
    placeholders(item)  # refuses unmatched braces

    def replace(match: re.Match[str]) -> str:
        token = match.group(0)
        return token[0] if token in ("{{", "}}") else values[match.group(1)]

    return _TOKEN.sub(replace, item)


def placeholder_values(parameters: Mapping[str, ParamValue], data_url: str,
                       train_url: str) -> dict[str, str]:
    """What each placeholder stands for; the folders win over a parameter of that name."""
    values = {name: format_parameter(value) for name, value in parameters.items()}
    values.update(data_url=folder_url(data_url), train_url=folder_url(train_url))
    return values


def appended_arguments(style: ArgumentStyle, parameters: Mapping[str, ParamValue],
                       data_url: str, train_url: str) -> list[str]:
    """The arguments a convention appends after the program."""
    if style == "none":
        return []
    args = []
    if style == "modelarts":
        args = [f"--data_url={folder_url(data_url)}", f"--train_url={folder_url(train_url)}"]
        return args + [f"--{name}={format_parameter(v)}" for name, v in parameters.items()]
    for name, value in parameters.items():
        if value is True:
            args.append(f"--{name}")
        elif value is not False:
            args.append(f"--{name}={format_parameter(value)}")
    return args


def folder_env(data_url: str, train_url: str) -> dict[str, str]:
    """The data and output folders as every rank gets them in its environment."""
    data, train = folder_url(data_url), folder_url(train_url)
    return {"TRAINDECK_DATA_URL": data, "TRAINDECK_TRAIN_URL": train,
            "DATA_URL": data, "TRAIN_URL": train}


def invocation(spec: JobSpec, boot: list[str], data_url: str, train_url: str) -> Invocation:
    """What the user's program is, for a rank that sees the folders at these paths.

    `boot` starts the boot file (`[python, <code>/train.py]`) of a framework or preset
    algorithm; a framework's `command` and a custom image's own command replace it.
    """
    algo = spec.algorithm
    values = placeholder_values(spec.parameters, data_url, train_url)
    style: ArgumentStyle = "modelarts"
    entry = boot
    if algo.framework is not None:
        style = algo.framework.argument_style
        if algo.framework.command is not None:
            entry = [fill(item, values) for item in algo.framework.command]
    elif algo.image is not None:
        style = algo.image.argument_style
        entry = [fill(item, values) for item in algo.image.command or []]
    argv = entry + appended_arguments(style, spec.parameters, data_url, train_url)
    env = {name: fill(value, values) for name, value in (spec.env or {}).items()}
    return Invocation(argv, {**folder_env(data_url, train_url), **env})


def rendezvous_env(rank: int, nodes: int, per_node: int, master_addr: str, master_port: int,
                   run_id: str) -> dict[str, str]:
    """torchrun's (torchelastic's) variables for process `rank` of `nodes` nodes running
    `per_node` processes each (global ranks are numbered node by node)."""
    world = str(nodes * per_node)
    node, local = divmod(rank, per_node)
    return {
        "MASTER_ADDR": master_addr, "MASTER_PORT": str(master_port),
        "WORLD_SIZE": world, "RANK": str(rank), "NODE_RANK": str(node),
        "GROUP_RANK": str(node), "ROLE_RANK": str(rank), "ROLE_WORLD_SIZE": world,
        "ROLE_NAME": "default", "GROUP_WORLD_SIZE": str(nodes), "LOCAL_RANK": str(local),
        "LOCAL_WORLD_SIZE": str(per_node), "TORCHELASTIC_RUN_ID": run_id,
        "TORCHELASTIC_RESTART_COUNT": "0", "TORCHELASTIC_MAX_RESTARTS": "0",
        # The defaults of torchrun's own options: a plain `torchrun train.py` on every
        # node joins one job of all the nodes, as under Kubeflow's PyTorchJob.
        "PET_NNODES": str(nodes), "PET_NODE_RANK": str(node),
        "PET_MASTER_ADDR": master_addr, "PET_MASTER_PORT": str(master_port),
    }
