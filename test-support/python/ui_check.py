"""Drives Baton's dashboard in a real browser (Debian's chromium, through chromium-driver).

    ui_check.py URL [SCREENSHOT_DIR]

Against a running node at URL: the overview loads; the playground runs a tool and lands
on its task page, which follows the task live (progress, logs, completion) without a
reload; a running task is cancelled from its page; the task list shows both; a task an
agent delegated over MCP shows in its parent's lineage tree; the overview says how many
nodes are up; the pages
fit a 390 px wide screen and the navigation is reachable by keyboard. With a screenshot
directory, a PNG of each page is saved there. With `UI_RICH` set, the node has the test server as `test`, whose
`rich` result is shown as text and an image. With `UI_ELICIT` set, it has
server-everything as `everything`, and its elicitation is answered from the task page. With `UI_ADD_SERVER` set
(a command serving MCP on stdio), that server is added from the servers page. With `UI_KEY` set, the node asks for
credentials: the page must ask for a key, refuse a wrong one and work with this one.
Exits non-zero, saying what failed.
"""

import json
import os
import sys
import time
import urllib.request

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

url = sys.argv[1].rstrip("/")
shots = sys.argv[2] if len(sys.argv) > 2 else None

options = webdriver.ChromeOptions()
options.binary_location = "/usr/bin/chromium"
for arg in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"]:
    options.add_argument(arg)
driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
wait = WebDriverWait(driver, 30)


def shot(name):
    if shots:
        os.makedirs(shots, exist_ok=True)
        driver.save_screenshot(os.path.join(shots, f"{name}.png"))


def heading(text):
    wait.until(EC.text_to_be_present_in_element((By.TAG_NAME, "h1"), text))


def status_is(value):
    wait.until(lambda d: d.find_element(By.ID, "task-status").text.strip() == value)


def fits():
    width, inner = driver.execute_script(
        "return [document.documentElement.scrollWidth, window.innerWidth]"
    )
    assert width <= inner + 1, f"the page is {width} px wide in a {inner} px window"


def run(tool, fields):
    driver.get(f"{url}/ui/#/playground?tool={tool}")
    heading("Playground")
    wait.until(EC.presence_of_element_located((By.ID, "run-form")))
    for name, value in fields.items():
        el = wait.until(EC.presence_of_element_located((By.ID, f"arg-{name}")))
        el.clear()
        el.send_keys(str(value))
    driver.find_element(By.ID, "run").click()
    wait.until(lambda d: d.execute_script("return location.hash").startswith("#/tasks/"))
    wait.until(EC.presence_of_element_located((By.ID, "task-status")))
    return driver.execute_script("return location.hash").split("/")[-1]


key = os.environ.get("UI_KEY")


def post(path, body, extra=None):
    """POSTs JSON to the node; returns the response."""
    headers = {"content-type": "application/json", "accept": "application/json, text/event-stream"}
    if key:
        headers["authorization"] = f"Bearer {key}"
    headers.update(extra or {})
    req = urllib.request.Request(f"{url}{path}", data=json.dumps(body).encode(), headers=headers, method="POST")
    return urllib.request.urlopen(req)


def delegate(parent, tool, arguments):
    """Calls `tool` over MCP as an agent running task `parent` would (its id in `_meta`)."""
    init = post("/mcp", {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "ui-check", "version": "1"}}})
    session = {"mcp-session-id": init.headers["mcp-session-id"], "mcp-protocol-version": "2025-11-25"}
    init.read()
    post("/mcp", {"jsonrpc": "2.0", "method": "notifications/initialized"}, session).read()
    post("/mcp", {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
        "name": tool, "arguments": arguments, "_meta": {"baton/parentTask": parent}}}, session).read()

try:
    driver.set_window_size(1280, 900)
    driver.get(f"{url}/ui/")
    if key:
        # A node that asks for credentials: the page asks for a key; a wrong one is
        # asked for again, the right one kept for the tab (every later page uses it).
        heading("asks for an API key")
        field_ = wait.until(EC.presence_of_element_located((By.ID, "key")))
        field_.send_keys("bk_wrong")
        field_.send_keys(Keys.ENTER)
        time.sleep(0.5)
        heading("asks for an API key")
        field_ = wait.until(EC.presence_of_element_located((By.ID, "key")))
        field_.clear()
        field_.send_keys(key)
        field_.send_keys(Keys.ENTER)
        assert driver.execute_script("return sessionStorage.getItem('baton-key')") == key
        assert not driver.execute_script("return document.cookie"), "no cookies"
    heading("Overview")
    wait.until(EC.presence_of_element_located((By.ID, "total")))
    peers_card = driver.find_element(By.ID, "peers-card").text
    assert ("needs the admin scope" in peers_card) if key else ("1 / 1" in peers_card), peers_card
    fits()
    shot("overview")

    # Run a tool from the playground and watch it: the page is never reloaded.
    slow = run("baton__sleep", {"ms": 2500, "steps": 5})
    driver.execute_script("window.__sameDocument = true")
    wait.until(lambda d: "step" in d.find_element(By.ID, "task-message").text)
    shot("task-running")
    status_is("completed")
    assert driver.execute_script("return window.__sameDocument === true"), "the page was reloaded"
    logs = driver.find_element(By.ID, "task-logs").text
    assert "sleeping 2500 ms in 5 steps" in logs, f"logs: {logs!r}"
    assert "awake" in logs, f"logs: {logs!r}"
    assert "slept 2500 ms in 5 steps" in driver.find_element(By.ID, "task-result").text
    shot("task")

    # Rich MCP content (the test server's `rich` tool) is shown as such.
    if os.environ.get("UI_RICH"):
        run("test__rich", {})
        status_is("completed")
        result = driver.find_element(By.ID, "task-result")
        assert "rich result" in result.text, result.text
        images = result.find_elements(By.CSS_SELECTOR, "img.content-image")
        assert len(images) == 1 and images[0].get_attribute("src").startswith("data:image/png;base64,")
        assert driver.execute_script("return arguments[0].naturalWidth", images[0]) > 0, "the image decodes"

    # A tool that asks for input (server-everything's elicitation): the task page shows
    # a form made from the requested schema, and the answer lets the task finish.
    if os.environ.get("UI_ELICIT"):
        run("everything__trigger-elicitation-request", {})
        status_is("input_required")
        # Questions are numbered per connection: elicitation-1, -2, …
        name = wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, '#input-card [id$="-name"]')))
        name.send_keys("By Browser")
        shot("task-input")
        driver.find_element(By.CSS_SELECTOR, '#input-card [id^="input-accept-"]').click()
        status_is("completed")
        wait.until(EC.text_to_be_present_in_element((By.ID, "task-result"), "By Browser"))
        assert not driver.find_elements(By.ID, "input-card"), "the form goes once answered"

    # Cancel a running task from its page.
    long = run("baton__sleep", {"ms": 60000, "steps": 60})
    status_is("running")
    driver.find_element(By.ID, "cancel").click()
    status_is("cancelled")
    assert not driver.find_element(By.ID, "cancel").is_enabled()

    # Both appear in the list, and the filter narrows it.
    driver.get(f"{url}/ui/#/tasks")
    heading("Tasks")
    wait.until(EC.text_to_be_present_in_element((By.ID, "task-table"), slow[-12:]))
    assert long[-12:] in driver.find_element(By.ID, "task-table").text
    shot("tasks")
    driver.get(f"{url}/ui/#/tasks?status=cancelled")
    wait.until(EC.text_to_be_present_in_element((By.ID, "task-table"), long[-12:]))
    assert slow[-12:] not in driver.find_element(By.ID, "task-table").text

    # Lineage: an agent running the first task delegates over MCP; the child hangs under
    # its parent in the tree, on either's page.
    delegate(slow, "baton__echo", {"delegated": True})
    driver.get(f"{url}/ui/#/tasks/{slow}")
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#lineage li[data-task]")) == 2)
    child = driver.find_elements(By.CSS_SELECTOR, "#lineage li[data-task]")[1].get_attribute("data-task")
    assert child != slow
    driver.get(f"{url}/ui/#/tasks/{child}")
    wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, f'#lineage li[data-task="{slow}"] li[data-task="{child}"] a[aria-current]')))
    shot("task-lineage")

    # A workflow (a diamond of sleeps), followed live on its page: the DAG fills in.
    wf = json.load(post("/v1/workflows", {"name": "diamond", "steps": [
        {"id": "start", "tool": "baton__sleep", "arguments": {"ms": 600}},
        {"id": "left", "tool": "baton__sleep", "arguments": {"ms": 600}, "depends_on": ["start"]},
        {"id": "right", "tool": "baton__sleep", "arguments": {"ms": 300}, "depends_on": ["start"]},
        {"id": "join", "tool": "baton__echo", "depends_on": ["left", "right"]},
    ]}))["workflow_id"]
    driver.get(f"{url}/ui/#/workflows")
    heading("Workflows")
    wait.until(EC.text_to_be_present_in_element((By.ID, "workflow-table"), wf[-12:]))
    driver.get(f"{url}/ui/#/workflows/{wf}")
    heading("diamond")
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#dag g[data-step]")) == 4)
    wait.until(lambda d: d.find_element(By.ID, "workflow-status").text.strip() == "completed")
    states = [g.get_attribute("data-state") for g in driver.find_elements(By.CSS_SELECTOR, "#dag g[data-step]")]
    assert states == ["completed"] * 4, states
    assert len(driver.find_elements(By.CSS_SELECTOR, "#gantt .gantt-row")) == 4
    widths = [b.size["width"] for b in driver.find_elements(By.CSS_SELECTOR, "#gantt .gantt-bar")]
    assert all(w > 0 for w in widths), f"gantt bars: {widths}"
    # Nothing the page did was refused by its content security policy.
    refused = [e for e in driver.get_log("browser") if "Content Security Policy" in e.get("message", "")]
    assert not refused, refused
    shot("workflow")

    # Queues: pause one from the page, see it paused, resume it.
    driver.get(f"{url}/ui/#/queues")
    heading("Queues")
    row = '#queue-table tr[data-queue="default"]'
    wait.until(EC.element_to_be_clickable((By.CSS_SELECTOR, f'{row} button[data-action="pause"]'))).click()
    wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, f"{row} [data-paused]")))
    wait.until(EC.element_to_be_clickable((By.CSS_SELECTOR, f'{row} button[data-action="resume"]'))).click()
    wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, f'{row} button[data-action="pause"]')))
    # Clear a queue's pending tasks, after saying yes to the question.
    held = json.load(post("/v1/tasks", {"tool": "baton__echo", "queue": "held", "delay_ms": 600000}))["task_id"]
    driver.get(f"{url}/ui/#/queues")
    held_row = '#queue-table tr[data-queue="held"]'
    wait.until(EC.element_to_be_clickable((By.CSS_SELECTOR, f'{held_row} button[data-action="clear"]'))).click()
    wait.until(EC.alert_is_present()).accept()
    wait.until(EC.text_to_be_present_in_element((By.ID, "queue-note"), "Cancelled 1 task of held"))
    assert json.load(urllib.request.urlopen(urllib.request.Request(f"{url}/v1/tasks/{held}", headers={"authorization": f"Bearer {key}"} if key else {})))["status"] == "cancelled"
    shot("queues")

    # Servers: the test server, healthy, with its tools.
    if os.environ.get("UI_RICH"):
        driver.get(f"{url}/ui/#/servers")
        heading("MCP servers")
        state = wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, '[data-server="test"] [data-state]')))
        assert state.get_attribute("data-state") == "healthy", state.get_attribute("data-state")
        shot("servers")

    # Add a server from the page (admins); it connects and lists its tools.
    if os.environ.get("UI_ADD_SERVER"):
        driver.get(f"{url}/ui/#/servers")
        heading("MCP servers")
        driver.find_element(By.CSS_SELECTOR, "#add-server summary").click()
        driver.find_element(By.ID, "server-name").send_keys("added")
        driver.find_element(By.ID, "server-target").send_keys(os.environ["UI_ADD_SERVER"])
        driver.find_element(By.ID, "add-server-submit").click()
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, '[data-server="added"] [data-state="healthy"]'))
        # A bad one is refused with the reason, and nothing is added.
        driver.find_element(By.CSS_SELECTOR, "#add-server summary").click()
        driver.find_element(By.ID, "server-name").send_keys("baton")
        driver.find_element(By.ID, "server-target").send_keys("true")
        driver.find_element(By.ID, "add-server-submit").click()
        wait.until(EC.text_to_be_present_in_element((By.CSS_SELECTOR, "[role=alert]"), "reserved"))
        assert not driver.find_elements(By.CSS_SELECTOR, '[data-server="baton"]')

    # Peers and audit: operators' pages. A key without their scopes is told so.
    driver.get(f"{url}/ui/#/peers")
    if key:
        wait.until(EC.text_to_be_present_in_element((By.CSS_SELECTOR, "[role=alert]"), "admin"))
    else:
        heading("Peers")
        wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, '#peer-table tr[data-self="true"]')))
        shot("peers")
    driver.get(f"{url}/ui/#/audit")
    if key:
        wait.until(EC.text_to_be_present_in_element((By.CSS_SELECTOR, "[role=alert]"), "audit:read"))
    else:
        heading("Audit")
        # The queue paused and resumed above are in the log.
        wait.until(EC.text_to_be_present_in_element((By.ID, "audit-table"), "queues.pause"))
        shot("audit")

    # By keyboard: Tab reaches the navigation, Enter follows a link. The overview now
    # charts the success rate of the minutes that had finishes.
    driver.get(f"{url}/ui/#/")
    heading("Overview")
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "svg.chart circle[data-rate]"))
    # From the first focusable element (the brand link), Tab walks the navigation.
    driver.execute_script("document.querySelector('.brand').focus()")
    for _ in range(2):
        ActionChains(driver).send_keys(Keys.TAB).perform()
    focused = driver.switch_to.active_element
    assert focused.get_attribute("data-page") == "tasks", focused.get_attribute("outerHTML")
    ActionChains(driver).send_keys(Keys.ENTER).perform()
    heading("Tasks")

    # A phone-sized screen.
    driver.set_window_size(390, 844)
    for page, title in [("#/", "Overview"), ("#/tasks", "Tasks"), (f"#/tasks/{slow}", "baton__sleep"), ("#/workflows", "Workflows"), ("#/queues", "Queues"), ("#/playground", "Playground")]:
        driver.get(f"{url}/ui/{page}")
        heading(title)
        time.sleep(0.3)
        fits()
    shot("playground-narrow")
    print("ui_check: every check passed")
finally:
    driver.quit()
