"""A survey's definition (``SURVEY_DIR/survey.yaml``): the questions, consent and instructions, the groups (a content,
a style and every method's output) sampled from a run directory, and the per-participant plan (the order of the
groups, the attention-check repeats and the order of the methods on each screen), all derived from recorded seeds.

Images are copied into ``SURVEY_DIR/images/`` under opaque names (a digest of the bytes): a participant's browser
sees neither method names nor file names, and the folder is all a lab needs to move the survey to its server.
"""
from __future__ import annotations

import hashlib
import random
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from metrics.preference import QUESTIONS

from ..atomic import write_text_atomic
from ..errors import RunError, SurveyError
from ..run_inputs import read_run, run_input_paths

__all__ = ["DEFAULT_QUESTIONS", "Group", "Question", "Screen", "SurveyDefinition", "create_survey",
           "load_survey", "participant_plan", "participant_seed", "IMAGES_DIR", "DEFINITION_NAME"]

DEFINITION_NAME = "survey.yaml"
IMAGES_DIR = "images"
_DIGEST_CHARS = 24


@dataclass(frozen=True)
class Question:
    """One question asked on every screen; ``id`` is the votes file's ``question`` (content, style, overall)."""

    id: str
    text: str


DEFAULT_QUESTIONS = (
    Question("content", "Which result preserves the content photo's structure and details best?"),
    Question("style", "Which result captures the style image's colours, textures and strokes best?"),
    Question("overall", "Which result do you like best overall?"),
)
"""The StyA2K paper's three questions (content preservation, stylisation, overall preference)."""

DEFAULT_INSTRUCTIONS = (
    "Each screen shows a content photo, a style image and several stylised results in random order. For each question, "
    "pick one result: click it, or press its number (1, 2, ...) — the highlighted question takes the answer and the "
    "next one is highlighted. Press Enter (or the button) to go on. There are no right answers; go with your first "
    "impression.")
DEFAULT_CONSENT = (
    "This study compares image style-transfer methods. It takes about 10 minutes. Your answers, the time you take per "
    "screen and the identifier you arrive with are stored; nothing else about you is. Taking part is voluntary and you "
    "may stop at any time. Tick the box to agree and start.")


@dataclass(frozen=True)
class Group:
    """One comparison: ``id`` (``<content stem>__<style stem>``, the votes file's ``group``), the image names of the
    content and the style, and each method's output image name (names inside ``images/``)."""

    id: str
    content: str
    style: str
    outputs: dict[str, str]


@dataclass(frozen=True)
class Screen:
    """One screen of a participant's plan: the group shown, whether it repeats an earlier screen (an attention
    check), and the methods in their on-screen order (slot 0 = position 1)."""

    group: int
    methods: tuple[str, ...]
    attention_check: bool = False


@dataclass
class SurveyDefinition:
    """The survey (``survey.yaml``; editable: title, texts, questions and the number of attention checks)."""

    title: str
    methods: list[str]
    groups: list[Group]
    seed: int = 0
    questions: list[Question] = field(default_factory=lambda: list(DEFAULT_QUESTIONS))
    instructions: str = DEFAULT_INSTRUCTIONS
    consent: str = DEFAULT_CONSENT
    completion: str = "Thank you! Your completion code is below; enter it where you were asked to."
    attention_checks: int = 1
    source_run: str | None = None

    def to_yaml(self) -> str:
        data = asdict(self)
        data["groups"] = [asdict(g) for g in self.groups]
        data["questions"] = [asdict(q) for q in self.questions]
        return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=110)

    @property
    def image_names(self) -> frozenset[str]:
        """Every image name the survey may serve (nothing else under ``images/`` is reachable)."""
        return frozenset(n for g in self.groups for n in (g.content, g.style, *g.outputs.values()))


def _copy_opaque(source: Path, images: Path) -> str:
    """Copy ``source`` into ``images`` as ``<digest>.<ext>``; returns that name."""
    data = source.read_bytes()
    name = f"{hashlib.sha256(data).hexdigest()[:_DIGEST_CHARS]}{source.suffix.lower()}"
    target = images / name
    if not target.exists():
        shutil.copyfile(source, target)
    return name


def create_survey(run_dir: str | Path, out: str | Path, groups: int = 20, seed: int = 0,
                  methods: list[str] | None = None, attention_checks: int = 1,
                  title: str | None = None) -> SurveyDefinition:
    """Sample ``groups`` pairs of the run (seeded, among the pairs every method stylised), copy their images into
    ``out/images/`` under opaque names and write ``out/survey.yaml``; returns the definition.

    ``methods``: the compared methods (default: every method of the run). Raises :class:`SurveyError` when the run
    has fewer complete pairs than ``groups``, an input image is gone, or a method is not in the run."""
    run_dir, out = Path(run_dir), Path(out)
    try:
        rows, manifest = read_run(run_dir)
    except RunError as exc:
        raise SurveyError(str(exc)) from None
    run_methods = list(dict.fromkeys(r["method"] for r in rows))
    chosen = list(methods) if methods else run_methods
    unknown = [m for m in chosen if m not in run_methods]
    if unknown:
        raise SurveyError(f"{run_dir}: method(s) {', '.join(unknown)} not in the run (it has {', '.join(run_methods)})")
    if len(chosen) < 2:
        raise SurveyError(f"{run_dir}: a survey compares at least 2 methods, got {', '.join(chosen) or 'none'}")
    pairs = list(dict.fromkeys((r["content"], r["style"]) for r in rows))
    def output(method: str, content: str, style: str) -> Path:
        return run_dir / method / f"{Path(content).stem}__{Path(style).stem}.png"
    complete = [p for p in pairs if all(output(m, *p).is_file() for m in chosen)]
    if groups < 1 or len(complete) < groups:
        raise SurveyError(f"{run_dir}: {len(complete)} pair(s) have an output of every method "
                          f"({', '.join(chosen)}); cannot sample {groups} group(s)")
    if not 0 <= attention_checks <= groups // 2:
        raise SurveyError(f"attention_checks must be between 0 and {groups // 2} (half the groups), "
                          f"got {attention_checks}")
    sampled = random.Random(seed).sample(complete, groups)
    sources = run_input_paths(manifest.get("config", {}))
    images = out / IMAGES_DIR
    images.mkdir(parents=True, exist_ok=True)
    built = []
    for content, style in sampled:
        inputs = []
        for role, name in (("content", content), ("style", style)):
            path = sources[role].get(name)
            if path is None or not path.is_file():
                raise SurveyError(f"{run_dir}: the {role} image {name} of the run is not found any more "
                                  "(the survey shows it beside the results)")
            inputs.append(_copy_opaque(path, images))
        built.append(Group(f"{Path(content).stem}__{Path(style).stem}", inputs[0], inputs[1],
                           {m: _copy_opaque(output(m, content, style), images) for m in chosen}))
    definition = SurveyDefinition(
        title=title or f"Which stylisation is best? ({run_dir.name})", methods=chosen, groups=built, seed=seed,
        attention_checks=attention_checks, source_run=str(run_dir))
    write_text_atomic(out / DEFINITION_NAME, definition.to_yaml())
    return definition


def _field(data: dict, key: str, kind: type | tuple[type, ...], source: Path) -> Any:
    if key not in data:
        raise SurveyError(f"{source}: missing key {key!r}")
    value = data[key]
    if not isinstance(value, kind) or isinstance(value, bool) and kind is int:
        raise SurveyError(f"{source}: {key!r} must be {getattr(kind, '__name__', kind)}, got {value!r}")
    return value


def load_survey(survey_dir: str | Path) -> SurveyDefinition:
    """Read and check ``survey_dir/survey.yaml`` (every image it names must be in ``images/``)."""
    source = Path(survey_dir) / DEFINITION_NAME
    try:
        data = yaml.safe_load(source.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SurveyError(f"{source}: no survey definition (create one with `survey create RUN_DIR`)") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise SurveyError(f"{source}: not a readable YAML file ({' '.join(str(exc).split())[:200]})") from None
    if not isinstance(data, dict):
        raise SurveyError(f"{source}: expected a mapping of survey settings")
    known = {f for f in SurveyDefinition.__dataclass_fields__}
    stray = sorted(set(data) - known)
    if stray:
        raise SurveyError(f"{source}: unknown key(s) {', '.join(stray)}; known: {', '.join(sorted(known))}")
    methods = _field(data, "methods", list, source)
    try:
        groups = [Group(str(g["id"]), str(g["content"]), str(g["style"]), {str(k): str(v) for k, v in
                                                                             g["outputs"].items()})
                  for g in _field(data, "groups", list, source)]
        raw_questions = data.get("questions")
        questions = ([Question(str(q["id"]), str(q["text"])) for q in raw_questions] if raw_questions
                     else list(DEFAULT_QUESTIONS))
    except (KeyError, TypeError, AttributeError) as exc:
        raise SurveyError(f"{source}: a group needs id, content, style and outputs (method: image), and a question "
                          f"id and text ({type(exc).__name__}: {exc})") from None
    bad = [q.id for q in questions if q.id not in QUESTIONS]
    if bad or not questions or len({q.id for q in questions}) != len(questions):
        raise SurveyError(f"{source}: question ids must be distinct and among {', '.join(QUESTIONS)}, got "
                          f"{', '.join(q.id for q in questions) or 'none'}")
    definition = SurveyDefinition(
        title=str(_field(data, "title", str, source)), methods=[str(m) for m in methods], groups=groups,
        seed=_field(data, "seed", int, source), questions=questions,
        instructions=str(data.get("instructions", DEFAULT_INSTRUCTIONS)), consent=str(data.get("consent", DEFAULT_CONSENT)),
        completion=str(data.get("completion", SurveyDefinition.completion)),
        attention_checks=int(data.get("attention_checks", 1)), source_run=data.get("source_run"))
    if not groups or len(definition.methods) < 2:
        raise SurveyError(f"{source}: a survey needs at least one group and two methods")
    for group in groups:
        if sorted(group.outputs) != sorted(definition.methods):
            raise SurveyError(f"{source}: group {group.id!r} has outputs of {', '.join(group.outputs)}, expected "
                              f"every method ({', '.join(definition.methods)})")
    if not 0 <= definition.attention_checks <= len(groups) // 2:
        raise SurveyError(f"{source}: attention_checks must be between 0 and {len(groups) // 2}")
    missing = [n for n in sorted(definition.image_names) if not (Path(survey_dir) / IMAGES_DIR / n).is_file()]
    if missing:
        raise SurveyError(f"{source}: {len(missing)} image(s) missing from {IMAGES_DIR}/, e.g. {missing[0]}")
    return definition


def participant_seed(definition: SurveyDefinition, participant: str) -> int:
    """The seed of a participant's plan: a digest of the survey seed and the participant id (recorded per
    participant; the same participant always gets the same plan)."""
    digest = hashlib.sha256(f"{definition.seed}:{participant}".encode()).digest()
    return int.from_bytes(digest[:6], "big")


def participant_plan(definition: SurveyDefinition, seed: int) -> list[Screen]:
    """The screens of one participant: every group once in a shuffled order, each screen's methods shuffled, and
    ``attention_checks`` repeats of groups from the first half of the order, inserted at least two screens after
    their original (with a fresh method order, so a consistent answer is not a repeated click)."""
    rng = random.Random(seed)
    order = list(range(len(definition.groups)))
    rng.shuffle(order)
    screens = [Screen(g, tuple(rng.sample(definition.methods, len(definition.methods)))) for g in order]
    half = max(1, len(order) // 2)
    for position in sorted(rng.sample(range(half), definition.attention_checks), reverse=True):
        original = screens[position]
        insert_at = rng.randint(position + 3, len(screens)) if position + 3 <= len(screens) else len(screens)
        screens.insert(insert_at, Screen(original.group, tuple(rng.sample(definition.methods,
                                                                          len(definition.methods))), True))
    return screens
