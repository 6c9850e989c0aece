"""End to end on real data: the default model over a slice of SciFact, served; a headless Chromium uses the
search page, and an OpenAI client gets the vectors ``embedkit encode`` writes."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from serve.servehelpers import ROOT, Server, server_env

pytestmark = pytest.mark.e2e

QUERY = "ADAR1 binds to Dicer to cleave pre-miRNA."  # SciFact test query 49
EXPECTED = "5953485"  # its one relevant abstract: "ADAR1 Forms a Complex with Dicer to Promote MicroRNA ..."
CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
CHROME_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1200,1600"]


def _cli(*args: str) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "embedkit.cli.main", *args], capture_output=True, text=True,
                            env=server_env(), cwd=ROOT, timeout=900)
    assert result.returncode == 0, result.stderr[-2000:]
    return result


@pytest.fixture(scope="module")
def scifact_server(shared_data, tmp_path_factory):
    """The first 100 SciFact abstracts plus the expected one, indexed by ``embedkit index build``."""
    root = tmp_path_factory.mktemp("scifact-serve")
    with open(shared_data / "scifact" / "corpus.jsonl", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f]
    subset = rows[:100] + [r for r in rows[100:] if r["_id"] == EXPECTED]
    (root / "corpus.jsonl").write_text("".join(json.dumps(r) + "\n" for r in subset), encoding="utf-8")
    _cli("index", "build", "--corpus", str(root / "corpus.jsonl"), "--out", str(root / "scifact"))
    with Server([str(root / "scifact")], root / "server.log") as server:
        server.expected_title = next(r["title"] for r in subset if r["_id"] == EXPECTED)
        yield server


def _artifacts() -> Path:
    folder = Path(os.environ.get("EMBEDKIT_TEST_ARTIFACTS", ROOT / "test-artifacts")) / "serve"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture()
def browser(tmp_path):
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        message = (f"{' and '.join(missing)} not installed: the browser test needs Debian's chromium and "
                   "chromium-driver (`apt-get install -y chromium chromium-driver`)")
        if os.environ.get("CI") or os.environ.get("EMBEDKIT_REQUIRE_BROWSER"):
            pytest.fail(message)
        warnings.warn(message)
        pytest.skip(f"SKIPPED LOUDLY: {message}")
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service as ChromeService

    options = Options()
    options.binary_location = str(CHROMIUM)
    for flag in CHROME_FLAGS + [f"--user-data-dir={tmp_path / 'chromium-profile'}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=ChromeService(str(CHROMEDRIVER)), options=options)  # no driver download
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def test_search_page_finds_the_abstract_in_a_real_browser(scifact_server, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.select import Select
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, 60)
    browser.get(scifact_server.base + "/")
    wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "1")
    assert [o.text for o in Select(browser.find_element(By.ID, "index")).options] == ["scifact"]
    Select(browser.find_element(By.ID, "mode")).select_by_value("hybrid")
    box = browser.find_element(By.ID, "query")
    box.send_keys(QUERY)
    browser.find_element(By.ID, "go").click()
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "li.hit")))
    hits = browser.find_elements(By.CSS_SELECTOR, "li.hit")
    browser.save_screenshot(str(_artifacts() / "search-page.png"))
    ids = [h.get_attribute("data-id") for h in hits]
    assert ids[0] == EXPECTED, ids
    first = hits[0].text
    assert scifact_server.expected_title in first and "score" in first
    status = browser.find_element(By.ID, "status")
    assert "server" in status.text and float(status.get_attribute("data-took-ms")) > 0
    assert len(ids) == 10  # the page's default k


def test_openai_client_gets_the_vectors_of_embedkit_encode(scifact_server, tmp_path):
    from openai import OpenAI

    texts = ["ADAR1 binds to Dicer.", "Vitamin D deficiency and infections.", "A short one"]
    (tmp_path / "texts.txt").write_text("\n".join(texts) + "\n", encoding="utf-8")
    _cli("encode", "--model", "default", "--backend", "torch", "--input", str(tmp_path / "texts.txt"), "--out",
         str(tmp_path / "cli.npy"))  # the exact path indexes are built with (the default `auto` may pick int8)
    expected = np.load(tmp_path / "cli.npy")

    client = OpenAI(base_url=scifact_server.base + "/v1", api_key="not-needed-for-reads", max_retries=0)
    default = client.embeddings.create(model="scifact", input=texts)  # the client asks for base64
    floats = client.embeddings.create(model="sentence-transformers/all-MiniLM-L6-v2", input=texts,
                                      encoding_format="float")
    for response in (default, floats):
        got = np.array([d.embedding for d in response.data], dtype=np.float32)
        assert got.shape == expected.shape == (3, 384)
        np.testing.assert_allclose(got, expected, atol=1e-5)
        assert response.usage.prompt_tokens > len(texts)
    with pytest.raises(Exception) as missing:
        client.embeddings.create(model="no-such-model", input="x")
    assert getattr(missing.value, "status_code", None) == 404

