"""The HTML report opens in headless Chromium (Debian's ``chromium``) with no failed request and no
console error, every image embedded, and a non-blank page. ``.ci/run`` installs Chromium when it
is missing; outside CI the test skips without it."""

import io
import os
import shutil
import warnings

import numpy as np
import pytest

from bayesvae.cli import main

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed; .ci/run should have installed it")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


def _open(browser, html_path):
    page = browser.new_page(viewport={"width": 1100, "height": 900})
    console_errors, failed = [], []
    page.on("console", lambda msg: console_errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda error: console_errors.append(str(error)))
    page.on("requestfailed", lambda request: failed.append(request.url))
    requests = []
    page.on("request", lambda request: requests.append(request.url))
    page.goto(html_path.resolve().as_uri(), wait_until="load")
    images = page.evaluate("""() => Array.from(document.images).map(img => ({
        src: img.getAttribute('src').slice(0, 22), width: img.naturalWidth}))""")
    screenshot = page.screenshot(full_page=True)
    page.close()
    return console_errors, failed, requests, images, screenshot


def _not_blank(png_bytes):
    import matplotlib.image as mpimg

    pixels = mpimg.imread(io.BytesIO(png_bytes), format="png")
    return float(np.std(pixels[..., :3])) > 0.02


def _anomaly_args(tmp_path, out):
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(size=(300, 3)), rng.normal(4.0, 1.0, size=(15, 3))])
    np.savez(tmp_path / "points.npz", X=X, y=np.r_[np.zeros(300), np.ones(15)])
    return [
        "anomaly",
        str(tmp_path / "points.npz"),
        "--label-column",
        "y",
        "--epochs",
        "50",
        "--out",
        str(out),
        "--report",
    ]


def _topics_args(tmp_path, out):
    rng = np.random.default_rng(0)
    words = ["alpha beta gamma delta epsilon".split(), "red green blue cyan magenta".split()]
    lines = [" ".join(rng.choice(words[i % 2], size=10)) for i in range(200)]
    (tmp_path / "corpus.txt").write_text("\n".join(lines))
    return [
        "topics",
        str(tmp_path / "corpus.txt"),
        "--topics",
        "2",
        "--epochs",
        "5",
        "--min-df",
        "1",
        "--max-df",
        "1.0",
        "--no-progress",
        "--out",
        str(out),
        "--report",
    ]


@pytest.mark.parametrize("family", ["vae", "abtest", "anomaly", "topics"])
def test_report_opens_cleanly_in_chromium(browser, tmp_path, family):
    out = tmp_path / family
    if family == "anomaly":
        args = _anomaly_args(tmp_path, out)
    elif family == "topics":
        args = _topics_args(tmp_path, out)
    elif family == "vae":
        args = [
            "vae",
            "--data",
            "digits",
            "--epochs",
            "3",
            "--hidden",
            "32",
            "--out",
            str(out),
            "--no-progress",
            "--report",
        ]
    else:
        args = [
            "abtest",
            "--arm",
            "A=200/1000",
            "--arm",
            "B=220/1000",
            "--method",
            "mcmc",
            "--rope",
            "0.01",
            "--out",
            str(out),
            "--report",
        ]
    assert main(args) == 0
    errors, failed, requests, images, screenshot = _open(browser, out / "report.html")
    assert errors == [] and failed == []
    assert all(url.startswith(("file:", "data:")) for url in requests)
    # anomaly: loss curves, projection, scores (NumPyro's loop records no gradient norms)
    assert len(images) >= {"topics": 2, "anomaly": 3}.get(family, 4)
    assert all(img["src"].startswith("data:image/png") and img["width"] > 0 for img in images)
    assert _not_blank(screenshot)
    (tmp_path / f"{family}.png").write_bytes(screenshot)


HOSTILE = ["<script>alert(1)</script>", "<img src=x onerror=alert(2)>"]


def _hostile_run(tmp_path, family):
    """A run whose user-controlled fields (arm names, vocabulary, folder name) are markup."""
    out = tmp_path / f"{family}<img src=x onerror=alert(3)>"
    if family == "abtest":
        args = ["abtest", "--arm", f"{HOSTILE[0]}=200/1000", "--arm", f"{HOSTILE[1]}=220/1000"]
        args += ["--out", str(out), "--report"]
    elif family == "topics":
        bow = tmp_path / "bow.npz"
        rng = np.random.default_rng(0)
        counts = np.zeros((60, 6), dtype=np.int64)
        counts[:30, :3] = rng.poisson(3.0, size=(30, 3))
        counts[30:, 3:] = rng.poisson(3.0, size=(30, 3))
        vocab = np.array(HOSTILE + ["<b>bold</b>", "a&b", "'quote'", '"dq"'])
        import scipy.sparse as sp

        sparse = sp.csr_matrix(counts)
        np.savez(
            bow,
            train_indptr=sparse.indptr,
            train_indices=sparse.indices,
            train_counts=sparse.data,
            vocab=vocab,
        )
        args = ["topics", str(bow), "--topics", "2", "--epochs", "3", "--min-df", "1"]
        args += ["--max-df", "1.0", "--no-progress", "--out", str(out), "--report"]
    else:
        args = _anomaly_args(tmp_path, out)
    assert main(args) == 0, args
    return out


@pytest.mark.parametrize("family", ["abtest", "topics", "anomaly"])
def test_hostile_strings_in_a_report_never_run(browser, tmp_path, family):
    out = _hostile_run(tmp_path, family)
    # the title is a user field too: rebuild the report with a hostile one
    assert main(["report", str(out), "--title", HOSTILE[0] + " <svg onload=alert(4)>"]) == 0
    page = browser.new_page()
    dialogs = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.goto((out / "report.html").resolve().as_uri(), wait_until="load")
    page.wait_for_timeout(300)
    text = page.inner_text("body")
    scripts = page.evaluate("() => document.scripts.length")
    handlers = page.evaluate(
        "() => Array.from(document.querySelectorAll('*')).filter("
        "e => Array.from(e.attributes).some(a => a.name.startsWith('on'))).length"
    )
    page.close()
    assert dialogs == [] and scripts == 0 and handlers == 0
    assert HOSTILE[0] in text  # shown as text, escaped
    if family in ("abtest", "topics"):
        assert HOSTILE[1] in text
    # outside the configuration's code fence (where nothing is markup) no raw HTML passes
    markdown, _, config_block = (out / "report.md").read_text().partition("## Configuration")
    fence = config_block.strip().split("yaml", 1)[0]
    assert fence.startswith("```") and config_block.rstrip().endswith(fence)
    assert "<script" not in markdown and "<img" not in markdown and "<svg" not in markdown
    assert "&lt;script&gt;" in markdown


def test_a_program_report_shows_graph_ppc_and_guide_against_nuts(browser, tmp_path):
    import shutil as _shutil

    import pyro
    import pyro.distributions as dist

    import bayesvae

    def model(sigma, y=None):
        mu = pyro.sample("mu", dist.Normal(0.0, 5.0))
        tau = pyro.sample("tau", dist.HalfCauchy(5.0))
        with pyro.plate("school", len(sigma)):
            eta = pyro.sample("eta", dist.Normal(0.0, 1.0))
            pyro.sample("obs", dist.Normal(mu + tau * eta, sigma), obs=y)

    sigma = np.array([15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0])
    y = np.array([28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0])
    svi = bayesvae.fit(model, sigma, y, guide="mvn", num_steps=500, progress=False)
    with warnings.catch_warnings():  # short chains: low ESS, honestly warned
        warnings.simplefilter("ignore", bayesvae.infer.mcmc.ConvergenceWarning)
        nuts = bayesvae.mcmc(model, sigma, y, num_warmup=150, num_samples=150, num_chains=2)
    out = tmp_path / "schools"
    report = bayesvae.report(svi, mcmc=nuts, out=out)
    errors, failed, requests, images, screenshot = _open(browser, report.html)
    assert errors == [] and failed == []
    assert all(url.startswith(("file:", "data:")) for url in requests)
    page = browser.new_page()
    page.goto(report.html.resolve().as_uri(), wait_until="load")
    alts = page.evaluate("() => Array.from(document.images).map(img => img.alt)")
    scripts = page.evaluate("() => document.scripts.length")
    page.close()
    assert scripts == 0
    if _shutil.which("dot") is not None or os.environ.get("CI"):
        assert any("pyro.render_model" in alt for alt in alts)
    assert any("posterior predictive" in alt for alt in alts)
    assert any("guide (dashed), NUTS" in alt for alt in alts)
    assert all(img["width"] > 0 for img in images) and _not_blank(screenshot)
