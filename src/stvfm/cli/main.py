"""``stvfm``: the command-line entry point.

Library errors (``StvfmError``) and usage errors become one line on stderr and exit code 2;
nothing else of the library prints.
"""

from __future__ import annotations

import sys
import warnings

import typer
from rich.console import Console
from rich.markup import escape

from stvfm.cli import bench as bench_commands
from stvfm.cli import data as data_commands
from stvfm.cli import export as export_commands
from stvfm.cli import ledger as ledger_commands
from stvfm.cli import reports as report_commands
from stvfm.cli import reproduce as reproduce_commands
from stvfm.cli import runs as run_commands
from stvfm.cli import search as search_commands
from stvfm.cli import serve as serve_commands
from stvfm.errors import DataWarning, StvfmError

app = typer.Typer(
    name="stvfm",
    help="Spatio-temporal forecasting on city grids with reprogrammed vision foundation models (ST-VFM) and its baselines.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    add_completion=False,
)
app.add_typer(data_commands.app, name="data")
app.add_typer(ledger_commands.app, name="ledger")
report_commands.register(app)
bench_commands.register(app)
run_commands.register(app)
reproduce_commands.register(app)
search_commands.register(app)
export_commands.register(app)
serve_commands.register(app)

_errors = Console(stderr=True)


def _is_usage_error(error: Exception) -> bool:
    """A click usage error (unknown flag, missing option, a value of the wrong type), whichever copy of
    click raised it: typer ships its own (``typer._click``) beside the ``click`` package."""
    return any(kind.__name__ == "ClickException" for kind in type(error).__mro__)


def _quiet_dependencies() -> None:
    """Lightning's tips and deprecation chatter drown the results users came for."""
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*module\\(s\\) in eval mode.*")
    warnings.filterwarnings("ignore", message=".*smaller than the logging interval.*")
    # a resumed run's log and checkpoint folders exist by design; the runner keeps what they hold (training.claim)
    warnings.filterwarnings("ignore", message=".*(Experiment logs|Checkpoint) directory .* exists and is not empty.*")


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """The library's own warnings are for users: one line each, no source location."""
    if issubclass(category, DataWarning):
        _print_line("[bold yellow]warning:[/]", str(message))
    else:
        _show_other_warning(message, category, filename, lineno, file, line)


_show_other_warning = warnings.showwarning


def _print_line(label: str, text: str) -> None:
    """``label`` is markup; ``text`` is shown as written (``city[v2].npz`` is not a rich tag)."""
    first = text.strip().splitlines()[0] if text.strip() else text
    _errors.print(f"{label} {escape(first)}", highlight=False, soft_wrap=True)


def _usage_line(error: Exception) -> str:
    """A click usage error as one line: which option and what is wrong, without click's usage block."""
    message = error.format_message()
    command = getattr(getattr(error, "ctx", None), "command_path", None)
    return f"{command}: {message}" if command else message


def main(argv: list[str] | None = None) -> int:
    _quiet_dependencies()
    warnings.showwarning = _show_warning
    try:
        # the command line as given, for outputs that record how they were made (``stvfm data grid``)
        invocation = ["stvfm", *(sys.argv[1:] if argv is None else argv)]
        app(args=argv, prog_name="stvfm", standalone_mode=False, obj={"argv": invocation})
    except StvfmError as error:
        _print_line("[bold red]error:[/]", str(error))
        return 2
    except OSError as error:  # the system refused a path the user gave (a read-only or missing folder)
        where = f"{error.filename}: " if error.filename else ""
        _print_line("[bold red]error:[/]", f"{where}{error.strerror or error}")
        return 2
    except (typer.Abort, KeyboardInterrupt):
        _errors.print("[bold red]aborted[/]")
        return 130
    except typer.Exit as done:
        return int(done.exit_code or 0)
    except Exception as error:
        if not _is_usage_error(error):
            raise
        _print_line("[bold red]error:[/]", _usage_line(error))
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
