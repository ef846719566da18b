"""The ``nexus`` command."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .._version import __version__


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(quiet=args.quiet)


def _kernel_install(args: argparse.Namespace) -> int:
    from ..notebook.kernel import install

    where = install(user=args.user, prefix=args.prefix, name=args.name)
    print(f"installed kernel 'Python 3 (Nexus)' ({args.name}) in {where}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nexus", description="Nexus: Ray-style tasks and actors for notebooks.")
    parser.add_argument("--version", action="version", version=f"nexus {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = commands.add_parser("demo", help="show the runtime at work: actors, ask/tell, a supervised failure and restart")
    demo.add_argument("--quiet", action="store_true", help="print only the summary line")
    demo.set_defaults(func=_demo)
    kernel = commands.add_parser("kernel", help="the 'Python 3 (Nexus)' Jupyter kernel")
    kernel_commands = kernel.add_subparsers(dest="kernel_command", metavar="ACTION")
    install = kernel_commands.add_parser("install", help="install the kernel spec for this Python (see jupyter kernelspec list)")
    install.add_argument("--user", action="store_true", help="for the current user only")
    install.add_argument("--prefix", help="under this prefix (a virtualenv's sys.prefix, say)")
    install.add_argument("--name", default="nexus", help="the kernel's name (default: nexus)")
    install.set_defaults(func=_kernel_install)
    from . import bridge, drain, start

    start.add_commands(commands)
    drain.add_commands(commands)
    bridge.add_commands(commands)
    version = commands.add_parser("version", help="print the version")
    version.set_defaults(func=lambda _a: print(f"nexus {__version__}") or 0)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 2
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
