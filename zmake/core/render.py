"""Render a Plan into a Makefile through the Jinja2 template. Pure: no processes.

Target names are an injective encoding of dataset names into characters make treats
literally, so `pool/my data` and `pool/vm:disk0` become ordinary targets."""

from __future__ import annotations

import hashlib
import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources

from zmake.core.batch import batches, stamp_name
from zmake.core.errors import UsageError
from zmake.core.names import target_name
from zmake.core.plan import Plan

TYPE_CHECKING = False  # `typing` is not imported: every `zmake send` imports this module
if TYPE_CHECKING:
    import jinja2

TEMPLATE = "Makefile.j2"
FLEET_TEMPLATE = "Fleet.j2"


def recipe_word(value: str) -> str:
    """A shell word inside a make recipe: shell-quoted, then `$` doubled for make."""
    return shlex.quote(value).replace("$", "$$")


def make_value(value: str) -> str:
    """A value on the right of a make assignment: `$` doubled, `#` escaped (doubling any
    backslashes before it), and a trailing backslash kept from continuing the line."""
    value = value.replace("$", "$$")
    value = re.sub(r"(\\*)#", lambda m: m[1] * 2 + "\\#", value)
    return value + "$()" if value.endswith("\\") else value


@dataclass(frozen=True)
class MakeVariable:
    """A Makefile variable of the target's own, exported to every `zmake send` as `env`."""

    name: str
    value: str
    env: str
    comment: str = ""  # a line above it
    in_stamps: bool = False  # part of the stamps folder's name: another value, other stamps


@dataclass(frozen=True)
class RenderSettings:
    """What the Makefile header records and exports to `zmake send`."""

    zmake: str
    remote: str
    ssh: str
    dest: str
    compress: str
    command: str
    origin: str  # where the inventory came from, for the header
    source_host: str = ""  # pull mode: the source's [USER@]HOST
    readonly: bool = True
    stall_timeout: str = "10m"
    selection: str = '{"roots": [], "exclude": []}'  # JSON, exported as ZMAKE_SELECTION
    # JSON that `zmake generate --update` regenerates from; empty: no self-update rule
    # (`zmake backup` writes its Makefile afresh each run).
    recipe: str = ""
    stamps: str = "/run/zmake/stamps"  # where make's targets (stamp files) live
    # the target's own variables (targets/*/target.py), each exported to `zmake send`
    target_variables: tuple[MakeVariable, ...] = ()


def environment() -> jinja2.Environment:
    import jinja2  # only when a Makefile is rendered, not on every send's start

    folder = resources.files("zmake.templates")
    env = jinja2.Environment(
        loader=jinja2.FunctionLoader(lambda name: (folder / name).read_text(encoding="utf-8")),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["make_value"] = make_value
    env.filters["recipe_word"] = recipe_word
    env.filters["target"] = target_name
    env.filters["fleet_target"] = lambda name, index: f"s{index}/{target_name(name)}"
    return env


UNSAFE_IN_TARGETS = re.compile(r"[\s:#%$'\"\\;=|&*?\[\]]")


def generation(plan: Plan) -> str:
    """Changes when any dataset's newest snapshot does (names the umount stamp)."""
    digest = hashlib.sha256()
    for node in plan.nodes:
        digest.update(f"{node.dataset.name}\0{stamp_name(node)}\n".encode())
    return digest.hexdigest()[:16]


def umount_stamp_name(plan: Plan) -> str:
    """The umount target's stamp file (under STAMPS): one per generation."""
    return f"umount@{generation(plan)}"


def check_stamps(stamps: str) -> None:
    if UNSAFE_IN_TARGETS.search(stamps):
        raise UsageError(
            f"run directory {stamps!r}: make targets live there, so it must not "
            "contain spaces or any of : # % $ ' \" \\ ; = | & * ? [ ]"
        )


def render_makefile(plan: Plan, settings: RenderSettings, version: str) -> str:
    check_stamps(settings.stamps)
    template = environment().get_template(TEMPLATE)
    return template.render(
        plan=plan,
        settings=settings,
        version=version,
        generation=generation(plan),
        umount_stamp=umount_stamp_name(plan),
        batches=batches(plan),
    )


@dataclass(frozen=True)
class FleetPart:
    """One source of a fleet's Makefile (`settings.stamps`: its own stamps folder)."""

    index: int
    name: str
    plan: Plan
    settings: RenderSettings
    report: str  # where its sends append their JSON lines
    host_streams: int  # its sends at once: also how many batches its small datasets fill

    @property
    def dataset_count(self) -> int:
        return len(self.plan.nodes)


def in_turn(parts: Sequence[FleetPart]) -> list[tuple[int, str]]:
    """Every dataset as (part index, name): each part's in plan order, the parts in turn."""
    queues = [[(part.index, node.dataset.name) for node in part.plan.nodes] for part in parts]
    longest = max((len(queue) for queue in queues), default=0)
    return [queue[at] for at in range(longest) for queue in queues if at < len(queue)]


def render_fleet(parts: Sequence[FleetPart], zmake: str, command: str, version: str) -> str:
    """One Makefile, one DAG for every source; each source's recipes get its settings."""
    for part in parts:
        check_stamps(part.settings.stamps)
    template = environment().get_template(FLEET_TEMPLATE)
    views = [
        {"index": p.index, "name": p.name, "plan": p.plan, "settings": p.settings,
         "report": p.report, "host_streams": p.host_streams, "dataset_count": p.dataset_count,
         "generation": generation(p.plan), "umount_stamp": umount_stamp_name(p.plan),
         "batches": batches(p.plan, p.host_streams)}
        for p in parts
    ]  # fmt: skip
    return template.render(
        parts=views, order=in_turn(parts), zmake=zmake, command=command, version=version
    )
