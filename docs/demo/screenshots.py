"""Takes the dashboard screenshots of the virtual startup demo (docs/demo/*.png).

    python docs/demo/screenshots.py [OUT_DIR]

Runs `examples/startup/run` (BATON_BIN and STARTUP_AGENT_BIN as for `run`), answers the
CEO's budget question in the dashboard, and captures the pages along the way with
Debian's chromium (headless, through chromium-driver and Selenium, pinned in
test-support/python/requirements.txt).
"""

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

ROOT = Path(__file__).resolve().parents[2]
OUT = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent)

with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
url = f"http://127.0.0.1:{port}"
data = Path(tempfile.mkdtemp(prefix="startup-shots-"))
env = {**os.environ, "STARTUP_PORT": str(port), "STARTUP_DATA_DIR": str(data)}
env.setdefault("STARTUP_PACE", "1.5")
run = subprocess.Popen([str(ROOT / "examples/startup/run")], env=env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def get(path):
    with urllib.request.urlopen(url + path, timeout=10) as r:
        return json.loads(r.read())


def until(what, predicate, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except (OSError, ValueError, KeyError):
            value = None
        if value:
            return value
        time.sleep(0.3)
    raise SystemExit(f"timed out waiting for {what}")


options = webdriver.ChromeOptions()
options.binary_location = "/usr/bin/chromium"
for arg in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
            "--window-size=1400,1100", "--hide-scrollbars"]:
    options.add_argument(arg)
driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
wait = WebDriverWait(driver, 60)


def shot(name, height=1100):
    driver.set_window_size(1400, height)
    time.sleep(1.0)
    driver.save_screenshot(str(OUT / f"{name}.png"))
    print("saved", OUT / f"{name}.png")


try:
    ceo = until("the CEO task", lambda: json.loads((data / "run.json").read_text())["ceo_task"])
    until("the budget question", lambda: get(f"/v1/tasks/{ceo}")["status"] == "input_required")
    driver.get(f"{url}/ui/#/tasks/{ceo}")
    card = wait.until(EC.presence_of_element_located((By.ID, "input-card")))
    shot("approval")
    card.find_element(By.CSS_SELECTOR, 'input[type="checkbox"]').click()
    budget = card.find_element(By.CSS_SELECTOR, 'input[data-type="number"]')
    budget.clear()
    budget.send_keys("250000")
    card.find_element(By.CSS_SELECTOR, '[id^="input-accept-"]').click()

    def workflow():
        for log in get(f"/v1/tasks/{ceo}/logs?limit=1000")["logs"]:
            text = json.dumps(log.get("data"))
            if "Workflow wf-" in text:
                return text.split("Workflow ")[1].split(" ")[0]
        return None

    wf = until("the workflow", workflow)

    def qa_running():
        steps = {s["step_id"]: s for s in get(f"/v1/workflows/{wf}")["steps"]}
        return steps["qa"] if steps["qa"].get("attempt", 0) >= 2 else None

    until("the architecture step", lambda: any(
        s["step_id"] == "architecture" and s["state"] == "running"
        for s in get(f"/v1/workflows/{wf}")["steps"]))
    driver.get(f"{url}/ui/#/workflows/{wf}")
    wait.until(EC.presence_of_element_located((By.ID, "dag")))
    shot("workflow-running")
    driver.get(f"{url}/ui/#/tasks/{ceo}")
    wait.until(EC.presence_of_element_located((By.ID, "lineage")))
    shot("ceo-running", 1500)
    qa = until("QA's second attempt", qa_running)
    driver.get(f"{url}/ui/#/tasks/{qa['task_id']}")
    wait.until(EC.presence_of_element_located((By.ID, "task-logs")))
    shot("qa-retry", 1400)
    until("the launch", lambda: get(f"/v1/tasks/{ceo}")["status"] == "completed", 300)
    driver.get(f"{url}/ui/#/workflows/{wf}")
    wait.until(EC.presence_of_element_located((By.ID, "dag")))
    shot("workflow-done", 1300)
    driver.get(f"{url}/ui/#/tasks/{ceo}")
    wait.until(EC.text_to_be_present_in_element((By.ID, "task-status"), "completed"))
    shot("ceo-done", 1800)
    driver.get(f"{url}/ui/#/servers")
    time.sleep(1)
    shot("servers", 1300)
finally:
    driver.quit()
    run.send_signal(signal.SIGINT)
    run.wait(timeout=60)
