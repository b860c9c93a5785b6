"""``stvfm``: the command-line entry point.

Library errors (``StvfmError``) become one line on stderr and exit code 2; nothing else
of the library prints.
"""

from __future__ import annotations

import sys
import warnings

import typer
from rich.console import Console

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


def _quiet_dependencies() -> None:
    """Lightning's tips and deprecation chatter drown the results users came for."""
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*module\\(s\\) in eval mode.*")
    warnings.filterwarnings("ignore", message=".*smaller than the logging interval.*")


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """The library's own warnings are for users: one line each, no source location."""
    if issubclass(category, DataWarning):
        _errors.print(f"[bold yellow]warning:[/] {message}", highlight=False, soft_wrap=True)
    else:
        _show_other_warning(message, category, filename, lineno, file, line)


_show_other_warning = warnings.showwarning


def main(argv: list[str] | None = None) -> int:
    _quiet_dependencies()
    warnings.showwarning = _show_warning
    try:
        # the command line as given, for outputs that record how they were made (``stvfm data grid``)
        invocation = ["stvfm", *(sys.argv[1:] if argv is None else argv)]
        app(args=argv, prog_name="stvfm", standalone_mode=False, obj={"argv": invocation})
    except StvfmError as error:
        _errors.print(f"[bold red]error:[/] {error}", highlight=False, soft_wrap=True)
        return 2
    except OSError as error:  # the system refused a path the user gave (a read-only or missing folder)
        where = f"{error.filename}: " if error.filename else ""
        _errors.print(f"[bold red]error:[/] {where}{error.strerror or error}", highlight=False, soft_wrap=True)
        return 2
    except (typer.Abort, KeyboardInterrupt):
        _errors.print("[bold red]aborted[/]")
        return 130
    except typer.Exit as done:
        return int(done.exit_code or 0)
    except Exception as error:  # click usage errors arrive here in non-standalone mode
        import click

        if isinstance(error, click.ClickException):
            error.show()
            return error.exit_code
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
