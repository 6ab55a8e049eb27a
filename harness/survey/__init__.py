"""User studies end to end: a survey sampled from a run directory (:mod:`.definition`), served to participants by a
web app (:mod:`.app`, Flask) that stores every answer as it is cast (:mod:`.store`, SQLAlchemy; SQLite WAL by
default), and exported in the votes format ``harness tally`` reads (:mod:`.export`).

``python -m harness survey create RUN_DIR --out SURVEY_DIR`` → ``survey serve SURVEY_DIR`` → ``survey export
SURVEY_DIR --out votes.csv`` → ``harness tally votes.csv``.
"""
from .definition import (DEFAULT_QUESTIONS, Group, Question, Screen, SurveyDefinition, create_survey, load_survey,
                         participant_plan, participant_seed)
from .export import attention_results, export_votes, votes_csv_text
from .store import SurveyStore, default_database_url

__all__ = ["DEFAULT_QUESTIONS", "Group", "Question", "Screen", "SurveyDefinition", "SurveyStore",
           "attention_results", "create_survey", "default_database_url", "export_votes", "load_survey",
           "participant_plan", "participant_seed", "votes_csv_text"]
