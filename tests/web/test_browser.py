"""The playground in a real browser: Debian's chromium driven by playwright (never a browser
download). Opens the page, sets controls, presses play and checks that the views update, that
lesson URLs reproduce their findings, that URL and controls round-trip, that compare mode runs
two configs, and that the page logs no console errors. Screenshots go to
``$GRADSIGHT_ARTIFACTS`` (default: a temporary directory)."""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlparse

import pytest

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists() and not os.environ.get("CI"):
    pytest.skip(f"{CHROMIUM} is absent (install Debian's chromium: apt-get install chromium); "
                "in CI these tests run", allow_module_level=True)  # fmt: skip

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is in the dev extra")

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--disable-sync"]  # fmt: skip
SMALL = "dataset=circles&depth=3&width=8&steps=150&lr=0.1"
TIMEOUT_MS = 60_000


@pytest.fixture(scope="module")
def artifacts() -> Path:
    path = Path(os.environ.get("GRADSIGHT_ARTIFACTS") or tempfile.mkdtemp(prefix="gradsight-web-"))
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser: Any, server: str) -> Iterator[Any]:
    pg = browser.new_page(viewport={"width": 1400, "height": 1150})
    pg.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    pg.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.base = server  # type: ignore[attr-defined]
    pg.errors = errors  # type: ignore[attr-defined]
    yield pg
    pg.close()
    assert errors == [], f"console errors: {errors}"


def open_page(page: Any, query: str) -> None:
    page.goto(f"{page.base}/?{query}")
    page.wait_for_selector("body[data-ready='1']")


def updates(page: Any, panel: str, view: str) -> int:
    return int(page.eval_on_selector(f".panel[data-panel={panel}] .{view}", "c => Number(c.dataset.updates || 0)"))


def wait_status(page: Any, panel: str, status: str) -> None:
    page.wait_for_selector(f".panel[data-panel={panel}][data-status={status}]")


def test_play_updates_gradient_strip_valves_units_and_surface(page: Any, artifacts: Path) -> None:
    open_page(page, SMALL)
    page.select_option("[data-field=activation]", "tanh")
    page.fill("[data-field=depth]", "5")
    page.dispatch_event("[data-field=depth]", "change")
    page.click("#play")
    wait_status(page, "a", "done")
    for view in ("v-grad", "v-valve", "v-units", "v-surface", "v-loss", "v-hist"):
        assert updates(page, "a", view) >= 2, view
    assert "step 150/150" in page.inner_text(".panel[data-panel=a] .panel-status")
    # the strip was drawn for 5 layers of tanh: the histogram's layer choice lists them
    assert page.eval_on_selector_all(".panel[data-panel=a] .hist-layer option", "o => o.length") == 5
    page.screenshot(path=str(artifacts / "playground-train.png"), full_page=True)


def test_url_and_controls_round_trip(page: Any) -> None:
    open_page(page, "activation=leaky_relu&activation_params=%7B%22negative_slope%22%3A0.2%7D"
                    "&depth=7&width=24&lr=0.03&residual=1&init=xavier&dataset=xor&noise=0.3")  # fmt: skip
    assert page.input_value("[data-field=activation]") == "leaky_relu"
    assert page.input_value("#act-params [data-param=negative_slope]") == "0.2"
    assert page.input_value("[data-field=depth]") == "7"
    assert page.input_value("[data-field=init]") == "xavier"
    assert page.is_checked("[data-field=residual]")
    assert page.input_value("[data-field=noise]") == "0.3"
    page.fill("[data-field=width]", "40")
    page.dispatch_event("[data-field=width]", "change")
    page.select_option("[data-field=optimizer]", "adam")
    assert "width=40" in page.url and "optimizer=adam" in page.url and "depth=7" in page.url
    page.reload()
    page.wait_for_selector("body[data-ready='1']")
    assert page.input_value("[data-field=width]") == "40"
    assert page.input_value("[data-field=optimizer]") == "adam"
    assert page.input_value("#act-params [data-param=negative_slope]") == "0.2"


def test_per_layer_activation_params_round_trip_url_controls_and_run(page: Any) -> None:
    params = quote(json.dumps([{"negative_slope": 0.2}, {"alpha": 0.5}, {}]))
    open_page(page, f"{SMALL}&layer_activations=leaky_relu,elu,relu&layer_activation_params={params}")
    per_layer = "[data-field=layer_activations]"
    assert page.input_value(per_layer) == "leaky_relu(negative_slope=0.2), elu(alpha=0.5), relu"
    page.fill(per_layer, "elu(alpha=0.7), tanh, leaky_relu(negative_slope=0.3)")
    page.dispatch_event(per_layer, "change")
    query = parse_qs(urlparse(page.url).query)
    assert query["layer_activations"] == ["elu,tanh,leaky_relu"]
    assert json.loads(query["layer_activation_params"][0]) == [{"alpha": 0.7}, {}, {"negative_slope": 0.3}]
    page.reload()
    page.wait_for_selector("body[data-ready='1']")
    assert page.input_value(per_layer) == "elu(alpha=0.7), tanh, leaky_relu(negative_slope=0.3)"
    page.click("#play")  # the server takes the per-layer parameters (a 422 would leave the run unstarted)
    wait_status(page, "a", "done")
    assert page.inner_text("#errors") == ""


def _lesson(page: Any, lesson_id: str, steps: int | None = None) -> None:
    """Open the lesson's link from the lessons tab (``steps``: that many steps instead of the
    lesson's, for lessons whose effect shows from the first step)."""
    open_page(page, "tab=lessons")
    href = page.get_attribute(f".lesson[data-lesson={lesson_id}] a", "href")
    assert "autoplay=1" in href
    if steps is not None:
        href = re.sub(r"([?&])steps=\d+", rf"\g<1>steps={steps}", href)
        assert f"steps={steps}" in href
    page.goto(f"{page.base}/{href}")
    page.wait_for_selector("body[data-ready='1']")


def test_sigmoid_lesson_url_shows_vanishing_gradients(page: Any, artifacts: Path) -> None:
    _lesson(page, "sigmoid_depth20")
    assert page.input_value("[data-field=activation]") == "sigmoid"
    assert page.input_value("[data-field=depth]") == "20"
    page.wait_for_selector(".panel[data-panel=a] .findings li[data-kind=vanishing_gradients]")
    assert "no lab results loaded" in page.inner_text("#lesson-banner")
    wait_status(page, "a", "done")
    page.screenshot(path=str(artifacts / "playground-sigmoid-lesson.png"), full_page=True)


def test_dead_relu_lesson_shows_dead_units_and_remedy_applies(page: Any) -> None:
    _lesson(page, "dead_relu_large_lr")
    page.wait_for_selector(".panel[data-panel=a] .findings li[data-kind=dead_units]")
    page.click(".findings li[data-kind=dead_units] button.apply:has-text('Leaky ReLU')")
    assert page.input_value("[data-field=activation]") == "leaky_relu"
    assert "activation=leaky_relu" in page.url
    page.wait_for_selector(".panel[data-panel=a][data-status=running], .panel[data-panel=a][data-status=done]")


def test_compare_mode_runs_two_configs_side_by_side(page: Any, artifacts: Path) -> None:
    open_page(page, SMALL + "&compare=1&b.activation=sigmoid")
    assert page.input_value("[data-bfield=activation]") == "sigmoid"
    page.click("#play")
    wait_status(page, "a", "done")
    wait_status(page, "b", "done")
    for panel in ("a", "b"):
        assert updates(page, panel, "v-grad") >= 2
    page.screenshot(path=str(artifacts / "playground-compare.png"), full_page=True)


def test_derivative_explorer_runs_scratch_beside_autograd(page: Any) -> None:
    open_page(page, "tab=derivatives")
    page.wait_for_selector("#ex-table tr")
    assert "the same, to the bit" in page.inner_text("#ex-table")
    assert "f′(0) = 0" in page.inner_text("#ex-kink")
    page.select_option("#ex-act", "leaky_relu")
    page.wait_for_function("document.querySelector('#ex-kink').textContent.includes('0.01')")


def test_closing_the_page_frees_its_run(browser: Any, server: str) -> None:
    import json
    import time
    import urllib.request

    def runs() -> list[dict]:
        with urllib.request.urlopen(f"{server}/api/runs") as res:
            return json.loads(res.read())

    pg = browser.new_page()
    pg.goto(f"{server}/?{SMALL.replace('steps=150', 'steps=5000')}")
    pg.wait_for_selector("body[data-ready='1']")
    pg.click("#play")
    pg.wait_for_selector(".panel[data-panel=a][data-status=running]")
    run_id = pg.evaluate("S.panels[0].run")
    assert run_id in [r["id"] for r in runs()]
    pg.fill("[data-field=lr]", "0.037")  # the learning rate changes while it trains
    pg.dispatch_event("[data-field=lr]", "change")
    pg.wait_for_function("document.querySelector('.panel-status').textContent.includes('lr 0.037')")
    assert next(r for r in runs() if r["id"] == run_id)["lr"] == 0.037
    pg.close()
    deadline = time.monotonic() + 30
    while run_id in [r["id"] for r in runs()] and time.monotonic() < deadline:
        time.sleep(0.2)
    assert run_id not in [r["id"] for r in runs()]


# ---------------------------------------------------------------- what each lesson shows
# Each remaining lesson's claim, checked on what the page's runs measured (the snapshots it
# drew) and the findings it lists. Lessons about initialisation show their effect from the
# first step, the large learning rate kills ReLU units within ~25 steps: the tests run fewer
# steps than the lessons' 300.


def _ended_panels(page: Any) -> dict[str, dict[str, Any]]:
    """Per panel ("a", "b"): the last snapshot's layers and theory, and the finding kinds the
    page lists, once every panel's run is done."""
    for panel in page.evaluate("S.panels.map(p => p.which)"):
        wait_status(page, panel, "done")
    out = page.evaluate("Object.fromEntries(S.panels.map(p => [p.which, {layers: p.snap.layers, "
                        "theory: p.snap.theory, cfg: p.cfg()}]))")  # fmt: skip
    for panel, snap in out.items():
        snap["kinds"] = page.eval_on_selector_all(f".panel[data-panel={panel}] .findings li[data-kind]",
                                                  "els => els.map(e => e.dataset.kind)")  # fmt: skip
        grads = [layer["grad_norm"] for layer in snap["layers"]]
        snap["first_over_last"] = grads[0] / grads[-1]  # the gradient strip's drop through depth
    return out


def _near_theory(snap: dict[str, Any], factor: float = 10.0) -> bool:
    """The measured first/last gradient ratio is within ``factor`` of the mean-field prediction
    the page draws beside it."""
    predicted = snap["theory"]["ratio"][0]
    return predicted / factor < snap["first_over_last"] < predicted * factor


def _relu_depth20(a: dict[str, Any], b: dict[str, Any]) -> None:
    # ReLU + He keeps the strip flat; sigmoid + Xavier (panel B) loses orders of magnitude
    assert (a["cfg"]["activation"], b["cfg"]["activation"]) == ("relu", "sigmoid")
    assert 0.1 < a["first_over_last"] < 10 and "vanishing_gradients" not in a["kinds"]
    assert b["first_over_last"] < 1e-8 and "vanishing_gradients" in b["kinds"]
    assert _near_theory(a) and _near_theory(b)


def _he_vs_xavier(a: dict[str, Any], b: dict[str, Any]) -> None:
    # He keeps the gradient flat over 30 ReLU layers; Xavier shrinks it by √(1/2) per layer
    assert (a["cfg"]["init"], b["cfg"]["init"]) == ("he", "xavier") and a["cfg"]["depth"] == 30
    assert 0.1 < a["first_over_last"] < 10 and "vanishing_gradients" not in a["kinds"]
    per_layer = b["first_over_last"] ** (1 / (len(b["layers"]) - 1))
    assert abs(per_layer - math.sqrt(0.5)) < 0.05 and "vanishing_gradients" in b["kinds"]
    assert _near_theory(a) and _near_theory(b)


def _no_dead_beside_dead_relu(a: dict[str, Any], b: dict[str, Any]) -> None:
    # the remedy's activation (Leaky ReLU, GELU) has no dead unit at the large learning rate
    # where ReLU, in panel B, has a site with a quarter or more of its units dead
    assert b["cfg"]["activation"] == "relu" and a["cfg"]["activation"] != "relu"
    assert all(layer["dead_fraction"] == 0 for layer in a["layers"]) and "dead_units" not in a["kinds"]
    assert max(layer["dead_fraction"] for layer in b["layers"]) >= 0.25 and "dead_units" in b["kinds"]


def _saturated_tanh(a: dict[str, Any], b: None) -> None:
    # σ_w² = 12: a quarter or more of every layer's pre-activations on the flat tails (measured
    # 0.27-0.40 at steps 1-300), the valve about a fifth open, and the monitor says so
    sat = [layer["saturated_fraction"] for layer in a["layers"]]
    opening = [layer["mean_derivative"] for layer in a["layers"]]  # tanh: sup f' = 1
    assert all(s >= 0.25 for s in sat) and all(o < 0.3 for o in opening)
    assert "saturation" in a["kinds"]


LESSON_CHECKS = {  # lesson id -> (steps, check on panels a, b)
    "relu_depth20": (10, _relu_depth20),
    "he_vs_xavier": (10, _he_vs_xavier),
    "leaky_relu_remedy": (100, _no_dead_beside_dead_relu),
    "gelu_transformers": (100, _no_dead_beside_dead_relu),
    "saturated_tanh": (30, _saturated_tanh),
}


def test_every_lesson_has_a_browser_check() -> None:
    from gradsight.web.lessons import by_id

    elsewhere = {"sigmoid_depth20", "dead_relu_large_lr", "relu_derivative"}  # tests above and below
    assert set(LESSON_CHECKS) | elsewhere == set(by_id())


@pytest.mark.parametrize("lesson_id", list(LESSON_CHECKS))
def test_lesson_url_shows_what_its_text_claims(page: Any, lesson_id: str) -> None:
    steps, check = LESSON_CHECKS[lesson_id]
    _lesson(page, lesson_id, steps)
    panels = _ended_panels(page)
    check(panels["a"], panels.get("b"))


def test_relu_derivative_lesson_opens_the_explorer(page: Any) -> None:
    _lesson(page, "relu_derivative")
    assert not page.is_visible("#view-train") and page.is_visible("#view-derivatives")
    page.wait_for_selector("#ex-table tr")
    assert "f′(0) = 0" in page.inner_text("#ex-kink")
    assert "the same, to the bit" in page.inner_text("#ex-table")


def test_page_offers_and_applies_remedies_as_the_table_says(page: Any) -> None:
    # the page's generic remedy code against gradsight.web.remedies on every finding kind,
    # catalog activation and residual setting (no training: the page's own function)
    from gradsight.web.config import RunConfig, elementwise_activations
    from gradsight.web.remedies import apply, by_kind, offered

    open_page(page, "tab=lessons")
    cases, expected = [], []
    for kind, rems in by_kind().items():
        for act in elementwise_activations():
            for residual in (False, True):
                cfg = {**RunConfig(activation=act, residual=residual, init="xavier", lr=0.3).to_dict()}
                cases.append([{"kind": kind}, cfg])
                expected.append([[r.label, r.action or apply(r, cfg)] for r in rems if offered(r, cfg)])
    got = page.evaluate("cases => cases.map(([f, cfg]) => remedies(f, cfg).map(([label, change]) => "
                        "[label, typeof change === 'string' ? change : {...cfg, ...change}]))", cases)  # fmt: skip
    assert got == expected
