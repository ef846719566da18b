"""The ``nexus`` command (click): the demo, the kernel, a cluster's head and nodes, draining, bridges, configuration.

Every command ends with exit code 0 when it did what was asked, 1 when it
could not (saying why on one line of stderr, never with a traceback), and 2
on bad usage. Shell completion is click's: ``eval "$(_NEXUS_COMPLETE=bash_source nexus)"``
(zsh_source, fish_source for those shells).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import click

from .._version import __version__

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 120}


@click.group(context_settings=CONTEXT, invoke_without_command=True)
@click.version_option(__version__, "--version", message="nexus %(version)s")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Nexus: Ray-style tasks and actors for notebooks."""
    if ctx.invoked_subcommand is None:
        click.echo(ctx.get_help())
        ctx.exit(2)


@cli.command("demo", short_help="Show the runtime at work.")
@click.option("--quiet", is_flag=True, help="Print only the summary line.")
def demo(quiet: bool) -> None:
    """Show the runtime at work: actors, ask/tell, a supervised failure and restart, a local cluster."""
    from .demo import run_demo

    sys.exit(run_demo(quiet=quiet))


@cli.command("version", short_help="Print the version.")
def version() -> None:
    """Print the version."""
    click.echo(f"nexus {__version__}")


@cli.group("kernel", short_help="The 'Python 3 (Nexus)' Jupyter kernel.")
def kernel() -> None:
    """The 'Python 3 (Nexus)' Jupyter kernel."""


@kernel.command("install", short_help="Install the kernel spec for this Python.")
@click.option("--user", is_flag=True, help="For the current user only.")
@click.option("--prefix", default=None, help="Under this prefix (a virtualenv's sys.prefix, say).")
@click.option("--name", default="nexus", show_default=True, help="The kernel's name.")
def kernel_install(user: bool, prefix: str | None, name: str) -> None:
    """Install the kernel spec for this Python (see `jupyter kernelspec list`)."""
    from ..notebook.kernel import install

    where = install(user=user, prefix=prefix, name=name)
    click.echo(f"installed kernel 'Python 3 (Nexus)' ({name}) in {where}")


@cli.group("config", short_help="Check a nexus.toml, or write one to start from.")
def config() -> None:
    """The cluster's configuration file (nexus.toml, or the file $NEXUS_CONFIG names)."""


@config.command("validate", short_help="Check a config file.")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
def config_validate(file: Path) -> None:
    """Check FILE: every problem is listed with its key, the value expected, the value given and the fix."""
    from ..cluster.settings import ConfigError, load_settings

    try:
        settings = load_settings(file)
    except ConfigError as exc:
        click.echo(f"nexus config validate: {exc}", err=True)
        sys.exit(1)
    said = [name for name in ("cluster", "head", "node", "tuning") if getattr(settings, name) != getattr(type(settings)(), name)]
    click.echo(f"{file}: valid ({', '.join(f'[{n}]' for n in said) or 'only defaults'} set)")


@config.command("init", short_help="Write a commented config file of an edition.")
@click.option("--edition", type=click.Choice(["core", "std", "enterprise"]), default="core", show_default=True, help="What it is for.")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), default=None, help="The file (default: print it).")
@click.option("--force", is_flag=True, help="Write over an existing file.")
def config_init(edition: str, output: Path | None, force: bool) -> None:
    """A commented config file to start from: core (one host), std (a head and its nodes), enterprise (membership
    in etcd, a head the other hosts reach). Each validates as it is."""
    from ..cluster.settings import template

    text = template(edition)
    if output is None:
        click.echo(text, nl=False)
        return
    if output.exists() and not force:
        click.echo(f"nexus config init: {output} exists; --force writes over it", err=True)
        sys.exit(1)
    with click.open_file(str(output), "w") as f:  # (mode 0644 under the usual umask: it holds no secret)
        f.write(text)
    click.echo(f"wrote the {edition} edition's config to {output}; check it with `nexus config validate {output}`")


def _add_commands() -> None:
    from . import bridge, commands, drain, start

    start.add_commands(cli)
    commands.add_commands(cli)
    drain.add_commands(cli)
    bridge.add_commands(cli)


_add_commands()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command ``argv`` (default: this process's arguments); its exit code."""
    try:
        code = cli.main(args=list(argv) if argv is not None else None, prog_name="nexus", standalone_mode=False)
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        return 1
    except OSError as exc:  # (a file that cannot be written, say: one line, not a traceback)
        click.echo(f"nexus: {exc}", err=True)
        return 1
    except SystemExit as done:  # (a command's own exit code)
        if isinstance(done.code, str):
            print(done.code, file=sys.stderr)
            return 1
        return int(done.code or 0)
    return code if isinstance(code, int) else 0


if __name__ == "__main__":
    sys.exit(main())
