"""``survey create | serve | export``: a user study from a run directory, served to participants, exported as votes."""
from __future__ import annotations

import argparse
import os
import secrets
import sys
from pathlib import Path

from .common import PROG, CLIError, add_parser, comma_list, existing_path, non_negative_int, positive_int

ENV_ADMIN_TOKEN = "HARNESS_SURVEY_TOKEN"


def add_survey_parser(subparsers) -> argparse.ArgumentParser:
    parser = add_parser(
        subparsers, "survey", help="a user study: create it from a run, serve it to participants, export the votes",
        description="The paper's user study as a web app. `create` samples groups (a content, a style and every "
                    "method's output) from a run directory into SURVEY_DIR (survey.yaml — questions, consent and "
                    "instructions, editable — and the images under opaque names). `serve` runs the participant "
                    "page: one group per screen in a per-participant shuffled order with shuffled methods, three "
                    "questions, keyboard shortcuts, resume, a completion code; every answer is stored as it is "
                    "cast (SQLite WAL in SURVEY_DIR/votes.db, or --database URL). `export` writes the votes CSV "
                    "that `tally` and `run --votes` read, and a detail CSV (positions, response times, attention "
                    "checks).",
        examples=[f"{PROG} survey create results/table1 --groups 20 --seed 0 --out survey",
                  f"{PROG} survey serve survey --host 0.0.0.0 --port 8000",
                  f"{PROG} survey export survey --out votes.csv && {PROG} tally votes.csv"],
    )
    commands = parser.add_subparsers(dest="survey_command", metavar="<step>", required=True)
    create = commands.add_parser("create", help="sample groups from RUN_DIR into SURVEY_DIR")
    create.add_argument("run", type=Path, metavar="RUN_DIR")
    create.add_argument("--out", type=Path, required=True, metavar="SURVEY_DIR")
    create.add_argument("--groups", type=positive_int, default=20, help="groups per participant (default 20)")
    create.add_argument("--seed", type=int, default=0, help="seed of the group sample and of the plans (default 0)")
    create.add_argument("--methods", type=comma_list, default=None, help="compared methods (default: all the run's)")
    create.add_argument("--attention-checks", type=non_negative_int, default=1,
                        help="repeated groups per participant, flagged when answered differently (default 1)")
    create.add_argument("--title", default=None, help="the page title")
    create.set_defaults(handler=cmd_survey_create)
    serve = commands.add_parser("serve", help="serve SURVEY_DIR to participants")
    serve.add_argument("survey", type=Path, metavar="SURVEY_DIR")
    serve.add_argument("--host", default="127.0.0.1", help="interface (default 127.0.0.1; 0.0.0.0 for a lab)")
    serve.add_argument("--port", type=positive_int, default=8000)
    serve.add_argument("--database", default=None, metavar="URL",
                       help="SQLAlchemy URL (default sqlite:///SURVEY_DIR/votes.db)")
    serve.add_argument("--admin-token", default=None,
                       help=f"token of /admin/status and /admin/export.csv (default ${ENV_ADMIN_TOKEN}, else random)")
    serve.add_argument("--threads", type=positive_int, default=8, help="request threads (default 8)")
    serve.set_defaults(handler=cmd_survey_serve)
    export = commands.add_parser("export", help="write the votes of SURVEY_DIR as a votes CSV")
    export.add_argument("survey", type=Path, metavar="SURVEY_DIR")
    export.add_argument("--out", type=Path, required=True, metavar="VOTES.csv")
    export.add_argument("--database", default=None, metavar="URL")
    export.add_argument("--completed-only", action="store_true", help="only participants who finished")
    export.add_argument("--exclude-failed", action="store_true",
                        help="leave out participants who answered a repeated group differently")
    export.set_defaults(handler=cmd_survey_export)
    return parser


def cmd_survey_create(args: argparse.Namespace) -> int:
    from ..survey import create_survey

    existing_path(args.run, "RUN_DIR")
    definition = create_survey(args.run, args.out, groups=args.groups, seed=args.seed, methods=args.methods,
                               attention_checks=args.attention_checks, title=args.title)
    print(f"survey: {len(definition.groups)} groups × {len(definition.methods)} methods "
          f"({', '.join(definition.methods)}), {definition.attention_checks} attention check(s) per participant")
    print(f"wrote {args.out / 'survey.yaml'} (edit the texts there) and {args.out / 'images'}/")
    print(f"next: {PROG} survey serve {args.out}")
    return 0


def cmd_survey_serve(args: argparse.Namespace) -> int:
    from waitress import serve

    from ..survey.app import create_app

    existing_path(args.survey, "SURVEY_DIR")
    token = args.admin_token or os.environ.get(ENV_ADMIN_TOKEN) or secrets.token_urlsafe(16)
    app = create_app(args.survey, args.database, token)
    base = f"http://{args.host}:{args.port}/"
    print(f"survey: {app.config['SURVEY'].title}", flush=True)
    print(f"participants: {base}?pid=PARTICIPANT_ID (or {base} for a generated id)")
    print(f"admin: {base}admin/status?token={token}&format=html (live status)")
    print(f"export: {base}admin/export.csv?token={token}")
    print("stop with Ctrl-C; every acknowledged answer is already in the database", flush=True)
    try:
        serve(app, host=args.host, port=args.port, threads=args.threads, ident="harness-survey")
    except OSError as exc:
        raise CLIError(f"--host {args.host} --port {args.port}: cannot listen ({exc.strerror or exc})") from None
    return 0


def cmd_survey_export(args: argparse.Namespace) -> int:
    from ..survey import SurveyStore, default_database_url, export_votes, load_survey

    existing_path(args.survey, "SURVEY_DIR")
    load_survey(args.survey)
    store = SurveyStore(args.database or default_database_url(args.survey))
    counts = export_votes(store, args.out, completed_only=args.completed_only, exclude_failed=args.exclude_failed)
    store.close()
    per_question = ", ".join(f"{q} {n}" for q, n in counts["per_question"].items()) or "none"
    print(f"exported {counts['rows']} votes of {counts['participants']} participant(s) ({per_question}) to "
          f"{counts['votes']}; detail: {counts['detail']}")
    if counts["attention_failed"]:
        print(f"attention checks failed by {len(counts['attention_failed'])} participant(s): "
              f"{', '.join(counts['attention_failed'][:10])}" + (" ..." if len(counts["attention_failed"]) > 10 else "")
              + ("" if args.exclude_failed else " (kept; --exclude-failed leaves them out)"), file=sys.stderr)
    print(f"next: {PROG} tally {counts['votes']}")
    return 0
