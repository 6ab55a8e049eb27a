"""The survey web app (Flask): the participant page, its JSON API, the images under opaque names, and the admin's
live status and export (behind a token).

Routes: ``GET /`` (the page; ``?pid=`` as crowd-sourcing platforms pass it, else a generated id kept in a cookie),
``GET /api/state``, ``POST /api/consent``, ``POST /api/answer`` (``{pid, screen, answers: {question: slot},
response_ms}``; slot = on-screen position − 1), ``GET /img/<name>``, ``GET /admin/status`` and
``GET /admin/export.csv`` (``?token=`` or ``Authorization: Bearer``). Method names never reach the browser: a screen
lists its results by slot, and the server maps slots to methods with the participant's recorded plan. Every bad
request is a 4xx with ``{"error": "..."}`` naming the problem.
"""
from __future__ import annotations

import hmac
import html
import re
import secrets
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from flask import Flask, Response, abort, jsonify, request, send_from_directory

from .definition import IMAGES_DIR, SurveyDefinition, load_survey, participant_plan, participant_seed
from .export import votes_csv_text
from .store import SurveyStore, default_database_url

__all__ = ["PID_PATTERN", "create_app"]

PID_PATTERN = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
"""Participant ids accepted from URLs (Prolific / MTurk ids fit)."""
COOKIE = "survey_pid"
_IMAGE_NAME = re.compile(r"[0-9a-f]{24}\.(png|jpg|jpeg)")


class _BadRequest(Exception):
    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class _Survey:
    """What the routes share: the definition, the store, the participants' plans, and the rules of an answer."""

    def __init__(self, definition: SurveyDefinition, store: SurveyStore) -> None:
        self.definition, self.store = definition, store
        self.plan = lru_cache(maxsize=4096)(lambda seed: participant_plan(definition, seed))

    @staticmethod
    def given_pid(body: dict[str, Any] | None = None) -> str | None:
        pid = body.get("pid") if body is not None else request.args.get("pid")
        pid = pid if pid is not None else request.cookies.get(COOKIE)
        if pid is not None and (not isinstance(pid, str) or not PID_PATTERN.fullmatch(pid)):
            raise _BadRequest("pid must be 1–64 letters, digits or _.:- characters")
        return pid

    def participant(self, pid: str | None):
        if pid is None:
            raise _BadRequest("no pid: open the page from its link (?pid=...) first")
        return self.store.participant(pid, participant_seed(self.definition, pid))

    def next_screen(self, participant) -> int | None:
        answered = self.store.answered_screens(participant.id)
        done = {i for i, a in answered.items() if len(a) == len(self.definition.questions)}
        return next((i for i in range(len(self.plan(participant.seed))) if i not in done), None)

    def state(self, participant) -> dict[str, Any]:
        """What the page shows next: consent, a screen (images by opaque URL, results by slot) or the code."""
        definition, screens = self.definition, self.plan(participant.seed)
        base = {"pid": participant.pid, "title": definition.title, "total": len(screens),
                "consented": participant.consented_at is not None}
        upcoming = self.next_screen(participant)
        if upcoming is None:
            return {**base, "done": True, "code": self.store.complete(participant.id),
                    "completion": definition.completion}
        if not base["consented"]:
            return {**base, "done": False, "consent": definition.consent, "instructions": definition.instructions}
        screen = screens[upcoming]
        group = definition.groups[screen.group]
        return {**base, "done": False, "screen": upcoming, "instructions": definition.instructions,
                "questions": [{"id": q.id, "text": q.text} for q in definition.questions],
                "content": f"img/{group.content}", "style": f"img/{group.style}",
                "options": [f"img/{group.outputs[m]}" for m in screen.methods]}

    def answer(self, participant, body: dict[str, Any]) -> None:
        """Check one screen's answers (4xx naming the problem) and store them, slots mapped to methods."""
        if participant.consented_at is None:
            raise _BadRequest("consent first (POST api/consent)", 409)
        screens = self.plan(participant.seed)
        index = body.get("screen")
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(screens):
            raise _BadRequest(f"screen must be an integer in 0..{len(screens) - 1}")
        upcoming = self.next_screen(participant)
        upcoming = len(screens) if upcoming is None else upcoming
        if index > upcoming:
            raise _BadRequest(f"screen {index} is not reached yet (the next one is {upcoming})", 409)
        answers, expected = body.get("answers"), [q.id for q in self.definition.questions]
        if not isinstance(answers, dict) or sorted(answers) != sorted(expected):
            raise _BadRequest(f"answers must give one slot for each question: {', '.join(expected)}")
        screen = screens[index]
        chosen = {}
        for question, slot in answers.items():
            if isinstance(slot, bool) or not isinstance(slot, int) or not 0 <= slot < len(screen.methods):
                raise _BadRequest(f"answer to {question!r} must be a slot in 0..{len(screen.methods) - 1}")
            chosen[question] = (screen.methods[slot], slot)
        response_ms = body.get("response_ms")
        if response_ms is not None and (isinstance(response_ms, bool) or not isinstance(response_ms, (int, float))
                                        or not 0 <= response_ms < 1e9):
            raise _BadRequest("response_ms must be a non-negative number of milliseconds")
        self.store.record(participant.id, index, self.definition.groups[screen.group].id, screen.attention_check,
                          chosen, None if response_ms is None else int(response_ms))


def _json_body() -> dict[str, Any]:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise _BadRequest("expected a JSON object body")
    return body


def _respond(payload: dict[str, Any]) -> Response:
    response = jsonify(payload)
    response.set_cookie(COOKIE, payload["pid"], max_age=60 * 60 * 24 * 60, samesite="Lax", httponly=True)
    response.headers["Cache-Control"] = "no-store"
    return response


def _require_admin(expected: str) -> None:
    header = request.headers.get("Authorization", "")
    token = header[7:] if header.startswith("Bearer ") else request.args.get("token", "")
    if not token:
        raise _BadRequest("admin token required (?token= or Authorization: Bearer)", 401)
    if not hmac.compare_digest(token.encode(), expected.encode()):
        raise _BadRequest("wrong admin token", 403)


def _status_page(title: str, status: dict[str, Any]) -> str:
    """The admin's live status as a small HTML page (every value escaped)."""
    rows = [("participants started", status["participants"]), ("consented", status["consented"]),
            ("completed", status["completed"]), ("groups", status["groups"]),
            ("methods", ", ".join(status["methods"]))]
    rows += [(f"votes: {q}", status["votes"].get(q, 0)) for q in status["questions"]]
    body = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>" for k, v in rows)
    return (f"<!doctype html><meta charset='utf-8'><meta http-equiv='refresh' content='10'>"
            f"<title>status: {html.escape(title)}</title><body style='font-family:system-ui'>"
            f"<h1>{html.escape(title)}</h1><table>{body}</table><p>refreshes every 10 s</p></body>")


def create_app(survey_dir: str | Path, database_url: str | None = None, admin_token: str | None = None) -> Flask:
    """The app of the survey in ``survey_dir`` (``survey.yaml`` + ``images/``); votes go to ``database_url``
    (default: SQLite ``survey_dir/votes.db``). ``admin_token``: required by the admin routes (default: a random
    one, in ``app.config["ADMIN_TOKEN"]``)."""
    survey_dir = Path(survey_dir)
    survey = _Survey(load_survey(survey_dir), SurveyStore(database_url or default_database_url(survey_dir)))
    definition, store = survey.definition, survey.store
    app = Flask(__name__, static_folder=None)
    app.config.update(ADMIN_TOKEN=admin_token or secrets.token_urlsafe(16), SURVEY=definition, STORE=store,
                      MAX_CONTENT_LENGTH=16 * 1024)
    page = resources.files(__package__).joinpath("participant.html").read_text(encoding="utf-8")
    images = (survey_dir / IMAGES_DIR).resolve()

    @app.errorhandler(_BadRequest)
    def bad_request(exc: _BadRequest):
        return jsonify(error=str(exc)), exc.status

    @app.errorhandler(413)
    def too_large(_exc):
        return jsonify(error="request too large"), 413

    @app.get("/")
    def index():
        return Response(page, mimetype="text/html", headers={"Cache-Control": "no-store"})

    @app.get("/api/state")
    def api_state():
        return _respond(survey.state(survey.participant(survey.given_pid() or secrets.token_hex(8))))

    @app.post("/api/consent")
    def api_consent():
        participant = survey.participant(survey.given_pid(_json_body()))
        store.consent(participant.pid)
        return _respond(survey.state(survey.participant(participant.pid)))

    @app.post("/api/answer")
    def api_answer():
        body = _json_body()
        participant = survey.participant(survey.given_pid(body))
        survey.answer(participant, body)
        return _respond(survey.state(participant))

    @app.get("/img/<name>")
    def image(name: str):
        if not _IMAGE_NAME.fullmatch(name) or name not in definition.image_names:
            abort(404)
        response = send_from_directory(images, name, max_age=3600)
        response.headers["Cache-Control"] = "private, max-age=3600"
        return response

    @app.get("/admin/status")
    def admin_status():
        """JSON for scripts; an HTML page (refreshing every 10 s) for a browser (``?format=html`` or Accept)."""
        _require_admin(app.config["ADMIN_TOKEN"])
        status = {**store.status(), "groups": len(definition.groups), "methods": definition.methods,
                  "questions": [q.id for q in definition.questions]}
        wants_html = request.args.get("format") == "html" or (
            request.accept_mimetypes.best_match(["application/json", "text/html"]) == "text/html")
        return Response(_status_page(definition.title, status), mimetype="text/html") if wants_html \
            else jsonify(status)

    @app.get("/admin/export.csv")
    def admin_export():
        _require_admin(app.config["ADMIN_TOKEN"])
        return Response(votes_csv_text(store), mimetype="text/csv",
                        headers={"Content-Disposition": "attachment; filename=votes.csv", "Cache-Control": "no-store"})

    return app
