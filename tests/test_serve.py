"""`composa serve` as a user runs it: a real server process on a loopback port, driven over HTTP and in a browser.

The load test's size (COMPOSA_LOAD_CLIENTS, COMPOSA_LOAD_REQUESTS) and the server's options can be changed from the environment to
measure the figures in docs/serve.md, e.g.
``COMPOSA_LOAD_REQUESTS=200 COMPOSA_SERVE_ARGS="--max-batch-size 1" python -m pytest -q -s tests/test_serve.py -k load``;
``COMPOSA_SERVE_RUN=DIR`` serves a run trained beforehand instead of the one-epoch reviews model.
"""
import concurrent.futures
import http.client
import json
import os
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rich.console import Console

from composa.predictor import Predictor
from composa.readers import bundled_data_path
from composa.training import bundled_config_path, train

MAX_BODY_BYTES = 20_000
CLIENTS = int(os.environ.get("COMPOSA_LOAD_CLIENTS", "8"))
REQUESTS_PER_CLIENT = int(os.environ.get("COMPOSA_LOAD_REQUESTS", "50"))
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
TEXTS = [
    "I love this lamp, the design is superb.",
    "The zipper is really annoying and the app is useless.",
    "The box contains the camera and a battery.",
    "",
    "héllo wörld ☃ — 素晴らしい",
]


class Server:
    """A `python -m composa serve DIR` process on a free loopback port, its output in a log file."""

    def __init__(self, directory: Path, log: Path, *args: str) -> None:
        self.port = _free_port()
        self.log = log
        command = [sys.executable, "-m", "composa", "serve", str(directory), "--port", str(self.port), *args]
        with open(log, "wb") as output:
            self.process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
        self._wait_until_healthy(timeout=60)

    def request(self, method: str, path: str, body=None, headers=None, connection=None):
        """(status, decoded JSON or text) of one request; `connection` keeps a client's connection alive."""
        client = connection or http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        data = body if body is None or isinstance(body, bytes) else json.dumps(body).encode("utf8")
        client.request(method, path, body=data, headers={"Content-Type": "application/json", **(headers or {})})
        response = client.getresponse()
        payload = response.read().decode("utf8")
        if connection is None:
            client.close()
        is_json = response.getheader("content-type", "").startswith("application/json")
        return response.status, json.loads(payload) if is_json else payload

    def predict(self, body, connection=None):
        return self.request("POST", "/predict", body, connection=connection)

    def stop(self) -> int:
        """SIGTERM, then the exit status (killed after 15 s, which fails the test that asked)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise

    def output(self) -> str:
        return self.log.read_text(encoding="utf8", errors="replace")

    def _wait_until_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"composa serve exited with {self.process.returncode}:\n{self.output()}")
            try:
                if self.request("GET", "/health")[0] == 200:
                    return
            except OSError:
                time.sleep(0.1)
        self.process.kill()
        raise RuntimeError(f"composa serve did not answer GET /health within {timeout} s:\n{self.output()}")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def reviews_run(tmp_path_factory):
    """The bundled reviews classifier, trained for one epoch (a few seconds), or the run in $COMPOSA_SERVE_RUN."""
    if os.environ.get("COMPOSA_SERVE_RUN"):
        return Path(os.environ["COMPOSA_SERVE_RUN"])
    output = tmp_path_factory.mktemp("reviews")
    train(bundled_config_path("reviews"), output, overrides={"training.max_epochs": 1},
          progress=False, plot=False, console=Console(quiet=True))
    return output


@pytest.fixture(scope="module")
def expected(reviews_run):
    """What the model loaded in this process (composa.load, through the Predictor) answers for a text."""
    predictor = Predictor.from_archive(reviews_run)
    texts = TEXTS + [json.loads(line)["text"] for line in bundled_data_path("reviews/test.jsonl").open(encoding="utf8")][:40]
    return dict(zip(texts, predictor.predict_texts(texts)))


@pytest.fixture(scope="module")
def server(reviews_run, tmp_path_factory):
    args = ["--max-body-bytes", str(MAX_BODY_BYTES), *shlex.split(os.environ.get("COMPOSA_SERVE_ARGS", ""))]
    running = Server(reviews_run, tmp_path_factory.mktemp("serve") / "server.log", *args)
    yield running
    assert running.stop() == 0, running.output()


def assert_answers(answer, reference):
    assert answer["label"] == reference["label"]
    assert sum(answer["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)
    assert answer["probabilities"] == pytest.approx(reference["probabilities"], abs=1e-5)


def test_health_names_the_task_and_the_labels(server):
    status, health = server.request("GET", "/health")
    assert status == 200
    assert health["status"] == "ok"
    assert health["task"] == "text_classification"
    assert sorted(health["labels"]) == ["negative", "neutral", "positive"]


def test_predict_one_text_gives_the_label_and_probabilities_of_the_loaded_model(server, expected):
    for text in TEXTS:
        status, answer = server.predict({"text": text})
        assert status == 200, answer
        assert_answers(answer, expected[text])


def test_predict_a_batch_answers_each_input_in_order(server, expected):
    texts = list(expected)[:20]
    status, answer = server.predict({"inputs": [texts[0], *({"text": text} for text in texts[1:])]})
    assert status == 200, answer
    assert len(answer["predictions"]) == len(texts)
    for prediction, text in zip(answer["predictions"], texts):
        assert_answers(prediction, expected[text])


@pytest.mark.parametrize(
    "body, status, message",
    [
        (b"{not json", 400, "not valid JSON"),
        (b"", 400, "body is empty"),
        ({"txt": "hello"}, 422, "'text'"),
        ({"text": 3}, 422, "'text'"),
        ({"inputs": []}, 422, "'inputs' must be a non-empty list"),
        ({"inputs": "one text"}, 422, "'inputs' must be a non-empty list"),
        ({"inputs": ["fine", {"tokens": 1}]}, 422, "inputs[1]"),
        ({"inputs": ["x"] * 300}, 413, "the limit is 256"),
        ({"text": "x" * MAX_BODY_BYTES}, 413, f"limit of {MAX_BODY_BYTES} bytes"),
    ],
    ids=["invalid-json", "empty", "wrong-field", "not-a-string", "empty-batch", "batch-not-a-list", "bad-batch-item",
         "too-many-inputs", "oversized-body"],
)
def test_a_bad_request_gets_a_4xx_json_error_naming_the_problem_and_the_server_keeps_serving(
    server, expected, body, status, message
):
    got_status, answer = server.predict(body)
    assert (got_status, answer["status"]) == (status, status)
    assert message in answer["error"]
    ok, answer = server.predict({"text": TEXTS[0]})
    assert ok == 200
    assert_answers(answer, expected[TEXTS[0]])


def test_an_oversized_body_without_a_length_is_cut_off_while_streaming(server):
    client = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    chunks = (b'{"text": "' + b"x" * 1000 for _ in range(MAX_BODY_BYTES // 1000 + 2))
    client.request("POST", "/predict", body=chunks, encode_chunked=True, headers={"Content-Type": "application/json"})
    response = client.getresponse()
    assert response.status == 413
    assert f"limit of {MAX_BODY_BYTES} bytes" in json.loads(response.read())["error"]
    client.close()


def test_wrong_routes_and_methods_get_json_errors(server):
    assert server.request("GET", "/nowhere") == (404, {"error": "no route /nowhere; try GET /, GET /health or POST /predict", "status": 404})
    status, answer = server.request("GET", "/predict")
    assert status == 405
    assert "GET is not allowed on /predict" in answer["error"]


def test_a_kept_alive_connection_is_answered_without_waiting_for_a_delayed_ack(server):
    # Without TCP_NODELAY on the server's sockets, each answer on a kept-alive connection waits for the
    # client's delayed ACK: at least 40 ms on Linux, against a few ms here.
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    latencies = []
    for _ in range(20):
        start = time.perf_counter()
        assert server.predict({"text": TEXTS[0]}, connection=connection)[0] == 200
        latencies.append(time.perf_counter() - start)
    connection.close()
    assert statistics.median(latencies) < 0.035


def test_under_load_every_answer_is_correct_none_is_lost_and_requests_share_batches(server, expected):
    texts = list(expected)
    before = server.request("GET", "/health")[1]["batching"]

    def client(number):
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        latencies, wrong = [], []
        for i in range(REQUESTS_PER_CLIENT):
            text = texts[(number * 7 + i) % len(texts)]
            start = time.perf_counter()
            status, answer = server.predict({"text": text}, connection=connection)
            latencies.append(time.perf_counter() - start)
            if status != 200 or answer["label"] != expected[text]["label"]:
                wrong.append((text, status, answer))
        connection.close()
        return latencies, wrong

    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(CLIENTS) as pool:
        results = list(pool.map(client, range(CLIENTS)))
    elapsed = time.perf_counter() - start
    latencies = sorted(latency for client_latencies, _ in results for latency in client_latencies)
    wrong = [case for _, client_wrong in results for case in client_wrong]
    after = server.request("GET", "/health")[1]["batching"]
    batches, inputs = after["batches"] - before["batches"], after["inputs"] - before["inputs"]
    print(f"\n{CLIENTS} clients x {REQUESTS_PER_CLIENT} requests: {len(latencies) / elapsed:.0f} requests/s, "
          f"p50 {1000 * statistics.median(latencies):.1f} ms, p99 {1000 * latencies[int(0.99 * (len(latencies) - 1))]:.1f} ms, "
          f"{batches} batches (mean {inputs / max(batches, 1):.2f} inputs, largest {after['largest_batch']})")
    assert wrong == []
    assert len(latencies) == inputs == CLIENTS * REQUESTS_PER_CLIENT
    if CLIENTS > 1 and after["max_batch_size"] > 1:
        assert batches < inputs, "concurrent requests should share model calls"


def test_sigterm_answers_the_requests_in_flight_then_exits_with_status_0(reviews_run, expected, tmp_path):
    # A long wait bound keeps the requests queued in the batcher when the signal comes.
    server = Server(reviews_run, tmp_path / "server.log", "--max-wait-ms", "500", "--max-batch-size", "64")
    texts = TEXTS[:4]
    with concurrent.futures.ThreadPoolExecutor(len(texts)) as pool:
        answers = [pool.submit(server.predict, {"text": text}) for text in texts]
        time.sleep(0.2)
        start = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        results = [answer.result(timeout=10) for answer in answers]
    assert server.stop() == 0, server.output()
    assert time.monotonic() - start < 5
    for (status, answer), text in zip(results, texts):
        assert status == 200, answer
        assert_answers(answer, expected[text])
    assert "composa serve: stopped" in server.output()
    with pytest.raises(ConnectionRefusedError):
        server.request("GET", "/health")


@pytest.mark.skipif(CHROMIUM is None or CHROMEDRIVER is None,
                    reason="needs Debian's chromium and chromium-driver (apt-get install -y chromium chromium-driver)")
def test_the_demo_page_in_headless_chromium_shows_the_label_and_a_bar_per_class(server, expected, tmp_path):
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.common.by import By  # lazy: selenium only matters to this test
    from selenium.webdriver.support.ui import WebDriverWait  # lazy: as above

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                 "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 f"--user-data-dir={tmp_path / 'profile'}", "--window-size=900,700"):
        options.add_argument(flag)
    browser = webdriver.Chrome(service=webdriver.ChromeService(executable_path=CHROMEDRIVER), options=options)
    try:
        browser.get(f"http://127.0.0.1:{server.port}/")
        wait = WebDriverWait(browser, 10)
        wait.until(lambda page: "labels:" in page.find_element(By.ID, "model").text)
        browser.find_element(By.ID, "text").send_keys(TEXTS[0])
        browser.find_element(By.ID, "predict").click()
        label = wait.until(lambda page: page.find_element(By.ID, "label").text)
        bars = [bar.get_attribute("data-label") for bar in browser.find_elements(By.CSS_SELECTOR, "#bars .bar-row")]
        screenshot = tmp_path / "demo.png"
        browser.save_screenshot(str(screenshot))
    finally:
        browser.quit()
    assert label == expected[TEXTS[0]]["label"]
    assert sorted(bars) == ["negative", "neutral", "positive"]
    assert bars[0] == label  # the most probable class comes first
    assert screenshot.stat().st_size > 5_000
    print(f"\nscreenshot of the demo page: {screenshot}")
