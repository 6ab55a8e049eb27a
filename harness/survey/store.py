"""Where a survey's answers live: a SQLAlchemy database (SQLite in WAL mode by default, ``SURVEY_DIR/votes.db``; any
SQLAlchemy URL, e.g. ``postgresql+psycopg://...``, for a lab's server). Each answer is committed in its own
transaction before the server acknowledges it, so a killed server loses nothing it acknowledged.

Tables: ``participants`` (id from the URL or generated, the seed of their plan, consent / completion times and the
completion code) and ``votes`` (one row per participant × screen × question: the chosen method, its on-screen
position, the response time; resubmitting a screen replaces its rows).
"""
from __future__ import annotations

import secrets
from collections.abc import Iterator, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import (BigInteger, Boolean, DateTime, ForeignKey, Integer, String, UniqueConstraint, create_engine, event,
                        func, select)
from sqlalchemy.exc import ArgumentError, IntegrityError, OperationalError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker

from ..errors import SurveyError

__all__ = ["Participant", "SurveyStore", "Vote", "default_database_url"]

DATABASE_NAME = "votes.db"


class _Base(DeclarativeBase):
    pass


class Participant(_Base):
    __tablename__ = "participants"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    pid: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    seed: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    consented_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    completion_code: Mapped[str | None] = mapped_column(String(16), nullable=True)


class Vote(_Base):
    __tablename__ = "votes"
    __table_args__ = (UniqueConstraint("participant_id", "screen", "question", name="one_answer_per_question"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    participant_id: Mapped[int] = mapped_column(ForeignKey("participants.id"), index=True)
    screen: Mapped[int] = mapped_column(Integer)
    group_id: Mapped[str] = mapped_column(String(200))
    attention_check: Mapped[bool] = mapped_column(Boolean)
    question: Mapped[str] = mapped_column(String(32))
    method: Mapped[str] = mapped_column(String(200))
    position: Mapped[int] = mapped_column(Integer)
    response_ms: Mapped[int | None] = mapped_column(Integer, nullable=True)
    cast_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


def default_database_url(survey_dir: str | Path) -> str:
    return f"sqlite:///{(Path(survey_dir) / DATABASE_NAME).resolve()}"


def _now() -> datetime:
    return datetime.now(timezone.utc)


class SurveyStore:
    """The database of one survey. ``url``: a SQLAlchemy URL (SQLite gets WAL journaling, full sync and a 30 s busy
    timeout, so concurrent requests queue instead of failing)."""

    def __init__(self, url: str) -> None:
        self.url = url
        try:
            sqlite = url.startswith("sqlite")
            self.engine = create_engine(url, connect_args={"timeout": 30} if sqlite else {},
                                        pool_pre_ping=not sqlite)
            if sqlite:
                event.listen(self.engine, "connect", _sqlite_pragmas)
            _Base.metadata.create_all(self.engine)
        except (ArgumentError, OperationalError, ImportError) as exc:
            raise SurveyError(f"database {url!r}: cannot open it ({' '.join(str(exc).split())[:200]})") from None
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    def close(self) -> None:
        self.engine.dispose()

    def participant(self, pid: str, seed: int) -> Participant:
        """The participant ``pid``, created (with ``seed``) on first sight."""
        with self._sessions() as session:
            found = session.scalar(select(Participant).where(Participant.pid == pid))
            if found is not None:
                return found
            session.add(Participant(pid=pid, seed=seed, created_at=_now()))
            try:
                session.commit()
            except IntegrityError:  # two first requests of one participant at once: the other one created it
                session.rollback()
            return session.scalar(select(Participant).where(Participant.pid == pid))

    def consent(self, pid: str) -> None:
        with self._sessions.begin() as session:
            found = session.scalar(select(Participant).where(Participant.pid == pid))
            if found is not None and found.consented_at is None:
                found.consented_at = _now()

    def answered_screens(self, participant_id: int) -> dict[int, dict[str, str]]:
        """Screen → question → method of every answer the participant gave."""
        with self._sessions() as session:
            rows = session.execute(select(Vote.screen, Vote.question, Vote.method)
                                   .where(Vote.participant_id == participant_id)).all()
        answered: dict[int, dict[str, str]] = {}
        for screen, question, method in rows:
            answered.setdefault(screen, {})[question] = method
        return answered

    def record(self, participant_id: int, screen: int, group_id: str, attention_check: bool,
               answers: Mapping[str, tuple[str, int]], response_ms: int | None) -> None:
        """Store one screen's answers (question → (method, position)) in one transaction, replacing earlier answers
        to that screen (an idempotent resubmission)."""
        for attempt in range(2):
            try:
                with self._sessions.begin() as session:
                    existing = {v.question: v for v in session.scalars(
                        select(Vote).where(Vote.participant_id == participant_id, Vote.screen == screen))}
                    for question, (method, position) in answers.items():
                        vote = existing.get(question)
                        if vote is None:
                            session.add(Vote(participant_id=participant_id, screen=screen, group_id=group_id,
                                             attention_check=attention_check, question=question, method=method,
                                             position=position, response_ms=response_ms, cast_at=_now()))
                        else:
                            vote.method, vote.position, vote.response_ms = method, position, response_ms
                            vote.cast_at = _now()
                return
            except IntegrityError:  # the same screen sent twice at once: the second try updates the first's rows
                if attempt:
                    raise

    def complete(self, participant_id: int) -> str:
        """Mark the participant done (once); returns their completion code."""
        with self._sessions.begin() as session:
            found = session.get(Participant, participant_id)
            if found.completion_code is None:
                found.completed_at = _now()
                found.completion_code = secrets.token_hex(5).upper()
            return found.completion_code

    def status(self) -> dict[str, Any]:
        with self._sessions() as session:
            started = session.scalar(select(func.count()).select_from(Participant))
            consented = session.scalar(select(func.count()).where(Participant.consented_at.is_not(None)))
            completed = session.scalar(select(func.count()).where(Participant.completed_at.is_not(None)))
            votes = dict(session.execute(select(Vote.question, func.count()).group_by(Vote.question)).all())
        return {"participants": started, "consented": consented, "completed": completed, "votes": votes}

    def rows(self) -> Iterator[dict[str, Any]]:
        """Every vote with its participant, in participant then screen order."""
        with self._sessions() as session:
            query = (select(Participant.pid, Participant.seed, Participant.completed_at, Vote)
                     .join(Vote, Vote.participant_id == Participant.id).order_by(Participant.id, Vote.screen,
                                                                                   Vote.question))
            for pid, seed, completed_at, vote in session.execute(query):
                yield {"participant": pid, "seed": seed, "completed": completed_at is not None,
                       "screen": vote.screen, "group": vote.group_id, "attention_check": vote.attention_check,
                       "question": vote.question, "method": vote.method, "position": vote.position + 1,
                       "response_ms": vote.response_ms, "cast_at": vote.cast_at.isoformat()}


def _sqlite_pragmas(connection, _record) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
