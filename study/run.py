"""Run a study from a search-space file, or resume it by running the same command again:

    python -m study.run SPEC.yaml [--set key.path=value ...] [--name NAME] [--storage DIR_OR_URI]
                        [--address auto|HOST:PORT] [--dry-run] [--restart] [--retry-errored]

Exit status: 0 every trial ended (completed, stopped early or diverged), 1 some trial errored
(rerun with --retry-errored to run those again) or the disk filled up (free space, rerun to resume),
2 bad input (one line naming the culprit), 130 interrupted (rerun the same command to resume).
"""

from __future__ import annotations

import argparse
import errno
import shlex
import sys

from study.config import ConfigError
from study.spec import load_spec


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="python -m study.run", description=__doc__.splitlines()[0])
    parser.add_argument("spec", help="search-space YAML (see search_spaces/)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a spec field")
    parser.add_argument("--name", help="study name (default: the spec's)")
    parser.add_argument("--storage", default="studies", help="folder or cloud URI of studies (default: studies/)")
    parser.add_argument("--address", help="join a running Ray cluster: auto, or HOST:PORT")
    parser.add_argument("--dry-run", action="store_true", help="print the trials and the cost, run nothing")
    parser.add_argument("--restart", action="store_true", help="delete the named study and start it over")
    parser.add_argument("--retry-errored", action="store_true",
                        help="when resuming, run errored trials again from their last checkpoint")  # fmt: skip
    args = parser.parse_args(argv)
    try:
        spec = load_spec(args.spec, args.set, args.name)
        if args.dry_run:
            from study.runner import dry_run

            print(dry_run(spec))
            return 0
        from study.runner import run_study

        counts = run_study(spec, args.storage, args.address, args.restart, args.retry_errored)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        if exc.errno != errno.ENOSPC:
            raise
        print(f"error: no space left on the device ({exc.filename or args.storage}); free some and rerun the same "
              "command to resume: finished trials and checkpoints are kept", file=sys.stderr)  # fmt: skip
        return 1
    command = "python -m study.run " + shlex.join([a for a in argv if a not in ("--restart", "--retry-errored")])
    ended = ", ".join(f"{v} {k}" for k, v in counts.items() if k != "seconds" and v)
    print(f"study {spec.name}: {ended} in {counts['seconds']} s; results in {args.storage}/{spec.name}")
    print(f"report: python -m study.report {shlex.quote(spec.name)} --storage {shlex.quote(args.storage)}")
    if counts["unfinished"]:
        print(f"interrupted: {counts['unfinished']} trials unfinished; resume with: {command}")
        return 130
    if counts["errored"]:
        print(f"{counts['errored']} trial(s) errored (see the report); run them again with: {command} --retry-errored")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
