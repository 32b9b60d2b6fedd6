"""Help-text conventions shared by every command, and the help tidy-up applied to the command tree.

Every option's help is a sentence followed by its default. Options whose value comes from the
config when the flag is absent have no click default (``None``), so they state theirs with
:func:`default`. Help text is rich markup: a bare ``[default: x]`` would be read as a markup
tag and vanish (leaving "... directories ." behind), hence the escaped bracket.
"""

from __future__ import annotations

from typing import Any

MEMORY_HELP = "Memory directory; ':memory:' for an ephemeral one."
MEMORY_DEFAULT = ".caredio/memory"
MEMORY_URL_HELP = "Chroma server URL, used instead of a local memory directory."


def default(text: object) -> str:
    """The ``[default: ...]`` tag of an option whose default is not a click default."""
    return f" \\[default: {text}]"


def tidy_help(command: Any) -> Any:
    """Help shows metavars, never Python types: typer >= 0.2x prints ``<bool>`` on flags,
    ``<str>``/``<path>``/``<list[Path]>`` beside values and ``{run_dir}`` in usage lines.

    Flags (``--help`` included) get no placeholder; a value without a declared metavar shows
    its name in capitals; an argument reads ``RUN_DIR`` (``[DIR]`` when optional) in the usage
    line and has no type column. Applied to the whole click command tree, so commands added
    later are covered too.
    """
    context = command.context_class(command, info_name=command.name)
    for param in command.params:
        if getattr(param, "is_flag", False):
            param.metavar = ""
            continue
        if param.metavar is None:
            param.metavar = (param.name or "value").strip("_").upper()
        if param.param_type_name == "argument":
            _plain_argument(param)
    help_option = command.get_help_option(context)
    if help_option is not None:
        help_option.metavar = ""
    for sub in getattr(command, "commands", {}).values():
        tidy_help(sub)
    return command


def _plain_argument(param: Any) -> None:
    # Instance attributes shadow the class's methods: the usage piece (a public click API) and
    # typer's type column, which has no setting to turn it off.
    piece = param.metavar
    if param.nargs != 1 and not piece.endswith("..."):
        piece += "..."
    piece = piece if param.required or piece.startswith("[") else f"[{piece}]"
    param.get_usage_pieces = lambda ctx: [piece]
    param.display_type_rich = lambda ctx: None
