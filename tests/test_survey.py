"""The survey web app: sampling and plans, the API's rules (opaque images, validation, idempotent answers, admin
token), export → tally, a killed server losing nothing acknowledged, a concurrent load test, and a real headless
Chromium driven through consent, keyboard and mouse answers, a reload (resume) and completion."""
from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from harness.cli import main
from harness.errors import SurveyError
from harness.io import read_votes
from harness.survey import (SurveyStore, create_survey, default_database_url, export_votes, load_survey,
                            participant_plan, participant_seed)
from harness.survey.app import create_app
from metrics.preference import tally

ROOT = Path(__file__).resolve().parents[1]
METHODS = ["styA2K", "adain", "all2all"]


def _png(path: Path, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 255, (24, 24, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)


@pytest.fixture()
def run_dir(tmp_path) -> Path:
    """A finished run of 3 methods × 6 pairs (2 contents × 3 styles), its inputs in their own folders."""
    run = tmp_path / "run"
    contents = [f"photo{i}.png" for i in range(2)]
    styles = [f"paint{i}.png" for i in range(3)]
    for i, name in enumerate(contents):
        _png(tmp_path / "content" / name, 100 + i)
    for i, name in enumerate(styles):
        _png(tmp_path / "style" / name, 200 + i)
    rows = []
    for m, method in enumerate(METHODS):
        for c in contents:
            for s in styles:
                _png(run / method / f"{Path(c).stem}__{Path(s).stem}.png", hash((m, c, s)) % 10_000)
                rows.append({"method": method, "content": c, "style": s, "untrained": False})
    with open(run / "metrics.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    (run / "manifest.json").write_text(json.dumps({"config": {"content": [str(tmp_path / "content")],
                                                              "style": [str(tmp_path / "style")]}}))
    return run


@pytest.fixture()
def survey_dir(run_dir, tmp_path) -> Path:
    create_survey(run_dir, tmp_path / "survey", groups=4, seed=3, attention_checks=1)
    return tmp_path / "survey"


# ------------------------------------------------------------------------------------------------ definition, plans
def test_create_samples_complete_pairs_with_opaque_images(run_dir, survey_dir):
    definition = load_survey(survey_dir)
    assert definition.methods == METHODS and len(definition.groups) == 4 and definition.seed == 3
    assert len({g.id for g in definition.groups}) == 4
    for group in definition.groups:
        for name in (group.content, group.style, *group.outputs.values()):
            assert len(Path(name).stem) == 24 and not any(m.lower() in name.lower() for m in METHODS)
        content, style = group.id.split("__")
        assert (survey_dir / "images" / group.outputs["adain"]).read_bytes() == \
            (run_dir / "adain" / f"{group.id}.png").read_bytes()
        assert (survey_dir / "images" / group.content).read_bytes() == \
            (run_dir.parent / "content" / f"{content}.png").read_bytes()
    again = create_survey(run_dir, survey_dir.parent / "again", groups=4, seed=3)
    assert [g.id for g in again.groups] == [g.id for g in definition.groups]  # seeded


def test_bad_surveys_are_one_line(run_dir, tmp_path, survey_dir):
    with pytest.raises(SurveyError, match="cannot sample 7 group"):
        create_survey(run_dir, tmp_path / "x", groups=7)
    with pytest.raises(SurveyError, match="not in the run"):
        create_survey(run_dir, tmp_path / "x", groups=2, methods=["adain", "SANet"])
    text = (survey_dir / "survey.yaml").read_text()
    (survey_dir / "survey.yaml").write_text(text.replace("attention_checks: 1", "attention_checks: 1\ncolour: red"))
    with pytest.raises(SurveyError, match="unknown key.*colour"):
        load_survey(survey_dir)
    (survey_dir / "survey.yaml").write_text(text.replace("- id: content", "- id: beauty"))
    with pytest.raises(SurveyError, match="question ids"):
        load_survey(survey_dir)
    assert main(["survey", "serve", str(tmp_path / "absent")]) == 2


def test_plans_shuffle_groups_and_methods_per_participant(survey_dir):
    definition = load_survey(survey_dir)
    plans = {pid: participant_plan(definition, participant_seed(definition, pid)) for pid in ("a", "b", "c", "d")}
    for pid, screens in plans.items():
        assert screens == participant_plan(definition, participant_seed(definition, pid))  # reproducible
        first = [s.group for s in screens if not s.attention_check]
        assert sorted(first) == [0, 1, 2, 3]
        checks = [i for i, s in enumerate(screens) if s.attention_check]
        assert len(checks) == 1 and len(screens) == 5
        original = first.index(screens[checks[0]].group)
        assert checks[0] >= original + 2 or checks[0] == len(screens) - 1
        assert all(sorted(s.methods) == sorted(METHODS) for s in screens)
    orders = {tuple(s.group for s in screens) for screens in plans.values()}
    methods = {s.methods for screens in plans.values() for s in screens}
    assert len(orders) > 1 and len(methods) > 1


# ------------------------------------------------------------------------------------------------------------- API
@pytest.fixture()
def client(survey_dir):
    app = create_app(survey_dir, admin_token="secret")
    return app.test_client()


def _answer_all(client, pid: str, choose=lambda state: {q["id"]: 0 for q in state["questions"]}) -> dict:
    state = client.post("/api/consent", json={"pid": pid}).get_json()
    while not state["done"]:
        state = client.post("/api/answer", json={"pid": pid, "screen": state["screen"], "answers": choose(state),
                                                 "response_ms": 1234}).get_json()
    return state


def test_api_keeps_method_names_and_files_out_of_the_browser(client, survey_dir):
    page = client.get("/").get_data(as_text=True)
    state = client.get("/api/state?pid=p1").get_json()
    assert not state["consented"] and state["total"] == 5
    state = client.post("/api/consent", json={"pid": "p1"}).get_json()
    text = json.dumps(state) + page
    assert not any(m.lower() in text.lower() for m in METHODS) and "photo0" not in text and "paint0" not in text
    assert len(state["options"]) == 3 and all(url.startswith("img/") for url in state["options"])
    assert client.get(f"/{state['options'][0]}").status_code == 200
    for bad in ("../survey.yaml", "..%2Fsurvey.yaml", "survey.yaml", "0" * 24 + ".png", "votes.db"):
        assert client.get(f"/img/{bad}").status_code == 404, bad


def test_answers_are_validated_and_resubmission_replaces(client, survey_dir):
    assert client.post("/api/answer", json={"pid": "p2", "screen": 0, "answers": {}}).status_code == 409  # no consent
    assert client.post("/api/consent", json={"pid": "p2"}).get_json()["screen"] == 0
    good = {"content": 0, "style": 1, "overall": 2}
    for body, status in [({"pid": "p2", "screen": 0, "answers": {"content": 0}}, 400),
                         ({"pid": "p2", "screen": 0, "answers": {**good, "overall": 3}}, 400),
                         ({"pid": "p2", "screen": 0, "answers": {**good, "overall": True}}, 400),
                         ({"pid": "p2", "screen": 3, "answers": good}, 409),
                         ({"pid": "p2", "screen": 99, "answers": good}, 400),
                         ({"pid": "bad pid!", "screen": 0, "answers": good}, 400),
                         ({"pid": "p2", "screen": 0, "answers": good, "response_ms": -1}, 400)]:
        response = client.post("/api/answer", json=body)
        assert response.status_code == status and "error" in response.get_json(), body
    assert client.post("/api/answer", data="not json", content_type="application/json").status_code == 400
    first = client.post("/api/answer", json={"pid": "p2", "screen": 0, "answers": good}).get_json()
    assert first["screen"] == 1
    again = client.post("/api/answer", json={"pid": "p2", "screen": 0, "answers": {**good, "overall": 0}}).get_json()
    assert again["screen"] == 1  # a resubmission replaces, it does not advance
    store = SurveyStore(default_database_url(survey_dir))
    rows = [r for r in store.rows() if r["participant"] == "p2"]
    assert len(rows) == 3 and {r["question"]: r["position"] for r in rows}["overall"] == 1
    definition = load_survey(survey_dir)
    screen = participant_plan(definition, participant_seed(definition, "p2"))[0]
    assert {r["question"]: r["method"] for r in rows} == {"content": screen.methods[0], "style": screen.methods[1],
                                                          "overall": screen.methods[0]}


def test_admin_routes_need_the_token_and_export_feeds_tally(client, survey_dir, tmp_path):
    assert client.get("/admin/status").status_code == 401
    assert client.get("/admin/export.csv?token=wrong").status_code == 403
    done = _answer_all(client, "p3")
    assert done["done"] and len(done["code"]) == 10
    assert client.get("/api/state?pid=p3").get_json()["code"] == done["code"]  # stable
    # p4 favours styA2K everywhere: look the method up through the plan, as the server does
    definition = load_survey(survey_dir)
    plan = participant_plan(definition, participant_seed(definition, "p4"))
    _answer_all(client, "p4", lambda state: {q["id"]: plan[state["screen"]].methods.index("styA2K")
                                             for q in state["questions"]})
    status = client.get("/admin/status", headers={"Authorization": "Bearer secret"}).get_json()
    assert status["completed"] == 2 and status["votes"] == {"content": 10, "overall": 10, "style": 10}
    page = client.get("/admin/status?token=secret&format=html").get_data(as_text=True)
    assert "<table>" in page and "<td>2</td>" in page and "refresh" in page
    exported = client.get("/admin/export.csv?token=secret").get_data(as_text=True)
    path = tmp_path / "votes.csv"
    path.write_text(exported)
    votes, problems = read_votes(path, methods=METHODS)
    assert problems == [] and len(votes) == 2 * 4 * 3  # the attention-check repeat is not a vote
    shares = tally(votes, methods=METHODS).set_index(["question", "method"])
    assert shares.loc[("overall", "styA2K"), "votes"] >= 4
    counts = export_votes(SurveyStore(default_database_url(survey_dir)), tmp_path / "out" / "votes.csv")
    assert counts["rows"] == 24 and "p4" not in counts["attention_failed"]  # p4 chose one method throughout
    with open(counts["detail"]) as fh:
        detail = list(csv.DictReader(fh))
    assert len(detail) == 30 and {d["response_ms"] for d in detail} == {"1234"}
    assert (tmp_path / "out" / "votes.csv").read_text() == exported


def test_attention_check_flags_inconsistent_answers(client, survey_dir, tmp_path):
    definition = load_survey(survey_dir)
    plan = participant_plan(definition, participant_seed(definition, "p5"))
    # consistent by method on every screen except the repeat, where p5 picks another method
    def choose(state):
        screen = plan[state["screen"]]
        method = "adain" if screen.attention_check else "all2all"
        return {q["id"]: screen.methods.index(method) for q in state["questions"]}
    _answer_all(client, "p5", choose)
    counts = export_votes(SurveyStore(default_database_url(survey_dir)), tmp_path / "v.csv")
    assert counts["attention_failed"] == ["p5"]
    kept = export_votes(SurveyStore(default_database_url(survey_dir)), tmp_path / "w.csv", exclude_failed=True)
    assert kept["rows"] == 0


# ------------------------------------------------------------------------------------------ real server, real load
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _request(base: str, path: str, body: dict | None = None) -> dict:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


def _serve(survey_dir: Path, port: int, *extra: str) -> subprocess.Popen:
    process = subprocess.Popen([sys.executable, "-m", "harness", "survey", "serve", str(survey_dir), "--port",
                                str(port), "--admin-token", "secret", *extra], cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1).close()
            return process
        except OSError:
            if process.poll() is not None:
                raise AssertionError(process.stdout.read())
            time.sleep(0.2)
    process.kill()
    raise AssertionError("the server did not start")


def test_a_killed_server_loses_no_acknowledged_vote(survey_dir, tmp_path):
    port = _free_port()
    base = f"http://127.0.0.1:{port}/"
    server = _serve(survey_dir, port)
    try:
        state = _request(base, "api/consent", {"pid": "k1"})
        for _ in range(3):
            state = _request(base, "api/answer", {"pid": "k1", "screen": state["screen"],
                                                  "answers": {"content": 0, "style": 1, "overall": 2}})
    finally:
        server.send_signal(signal.SIGKILL)
        server.wait()
    assert main(["survey", "export", str(survey_dir), "--out", str(tmp_path / "votes.csv")]) == 0
    votes, _ = read_votes(tmp_path / "votes.csv")
    assert len(votes) == 9 and state["screen"] == 3


def test_load_80_participants_20_groups_every_vote_once(tmp_path):
    """80 participants × 20 groups × 3 questions sent by 16 concurrent clients to a real server."""
    run = tmp_path / "run"
    for m, method in enumerate(METHODS):
        for g in range(20):
            _png(run / method / f"c{g}__s{g}.png", m * 100 + g)
    for g in range(20):
        _png(tmp_path / "content" / f"c{g}.png", 1000 + g)
        _png(tmp_path / "style" / f"s{g}.png", 2000 + g)
    with open(run / "metrics.csv", "w") as fh:
        fh.write("method,content,style\n" + "".join(f"{m},c{g}.png,s{g}.png\n" for m in METHODS for g in range(20)))
    (run / "manifest.json").write_text(json.dumps({"config": {"content": [str(tmp_path / "content")],
                                                              "style": [str(tmp_path / "style")]}}))
    survey = tmp_path / "survey"
    create_survey(run, survey, groups=20, attention_checks=0)
    port = _free_port()
    base = f"http://127.0.0.1:{port}/"
    server = _serve(survey, port, "--threads", "16")
    participants = [f"load{i:03d}" for i in range(80)]

    def take_part(pid: str) -> int:
        state = _request(base, "api/consent", {"pid": pid})
        answered = 0
        while not state["done"]:
            slot = (hash(pid) + state["screen"]) % 3
            state = _request(base, "api/answer", {"pid": pid, "screen": state["screen"], "response_ms": 900,
                                                  "answers": {"content": slot, "style": (slot + 1) % 3,
                                                              "overall": slot}})
            answered += 1
        return answered

    try:
        start = time.perf_counter()
        with ThreadPoolExecutor(16) as pool:
            screens = list(pool.map(take_part, participants))
        seconds = time.perf_counter() - start
    finally:
        server.terminate()
        server.wait()
    print(f"load test: {80 * 20 * 3} votes in {seconds:.1f} s = {80 * 20 * 3 / seconds:.0f} votes/s")
    assert screens == [20] * 80
    store = SurveyStore(default_database_url(survey))
    rows = list(store.rows())
    assert len(rows) == 4800
    keys = Counter((r["participant"], r["group"], r["question"]) for r in rows)
    assert len(keys) == 4800 and set(keys.values()) == {1}
    assert store.status()["completed"] == 80


# ---------------------------------------------------------------------------------------------- headless Chromium
def _chromium() -> tuple[str, str] | None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


@pytest.mark.skipif(_chromium() is None, reason="needs the distribution's chromium and chromedriver "
                                                 "(apt-get install chromium chromium-driver; .ci/run does)")
def test_participant_page_in_headless_chromium(survey_dir, tmp_path):
    webdriver = pytest.importorskip("selenium.webdriver", reason="needs selenium (the test extra)")
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser, driver_path = _chromium()
    port = _free_port()
    base = f"http://127.0.0.1:{port}/"
    server = _serve(survey_dir, port)
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000"):
        options.add_argument(flag)
    chrome = webdriver.Chrome(service=webdriver.ChromeService(executable_path=driver_path), options=options)
    wait = WebDriverWait(chrome, 20)
    try:
        chrome.get(base + "?pid=browser1")
        wait.until(lambda d: d.find_element(By.ID, "consent").is_displayed())
        start = chrome.find_element(By.ID, "start")
        assert not start.is_enabled()  # no start without consent
        chrome.find_element(By.ID, "agree").click()
        start.click()
        text = lambda: chrome.find_element(By.ID, "progress-text").text  # noqa: E731
        wait.until(lambda d: text() == "group 1 of 5")
        next_button = chrome.find_element(By.ID, "next")
        body = chrome.find_element(By.TAG_NAME, "body")
        body.send_keys("1")
        body.send_keys("2")
        assert not next_button.is_enabled()  # one question unanswered
        chrome.find_elements(By.CSS_SELECTOR, "#options figure")[2].click()  # the mouse answers the third
        assert next_button.is_enabled()
        body.send_keys("\n")
        wait.until(lambda d: text() == "group 2 of 5")
        for key in "231":
            body.send_keys(key)
        body.send_keys("\n")
        wait.until(lambda d: text() == "group 3 of 5")
        chrome.refresh()  # resume where the participant left off
        wait.until(lambda d: d.find_element(By.ID, "survey").is_displayed() and text() == "group 3 of 5")
        chrome.save_screenshot(str(tmp_path / "survey.png"))
        for screen in (3, 4, 5):
            for key in "333":
                body = chrome.find_element(By.TAG_NAME, "body")
                body.send_keys(key)
            body.send_keys("\n")
            if screen < 5:
                wait.until(lambda d, s=screen: text() == f"group {s + 1} of 5")
        wait.until(lambda d: d.find_element(By.ID, "done").is_displayed())
        code = chrome.find_element(By.ID, "code").text
        assert len(code) == 10
    finally:
        chrome.quit()
        server.terminate()
        server.wait()
    screenshot = Image.open(tmp_path / "survey.png")
    assert screenshot.size[0] >= 1000 and np.asarray(screenshot.convert("L")).std() > 10  # images drawn
    assert main(["survey", "export", str(survey_dir), "--out", str(tmp_path / "votes.csv")]) == 0
    votes, problems = read_votes(tmp_path / "votes.csv", methods=METHODS)
    assert problems == [] and len(votes) == 4 * 3 and set(votes["participant"]) == {"browser1"}
    definition = load_survey(survey_dir)
    plan = participant_plan(definition, participant_seed(definition, "browser1"))
    first = votes[votes["group"] == definition.groups[plan[0].group].id].set_index("question")["method"]
    assert first.to_dict() == {"content": plan[0].methods[0], "style": plan[0].methods[1],
                               "overall": plan[0].methods[2]}
    assert os.path.getsize(tmp_path / "survey.png") > 10_000
