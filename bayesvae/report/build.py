"""Self-contained run reports: ``report.html`` (CSS inline, images as data URIs, nothing fetched)
and ``report.md`` beside it, rendered from Jinja2 templates.

A report is built from a run folder, read through :class:`bayesvae.runs.RunFolder` (files
checked against its manifest; the report's own files recorded in it): ``config.yaml`` names the
family, and each family registers
a section builder in :data:`FAMILY_SECTIONS`. Generic sections follow from what the folder holds:
an SVI section from ``metrics.csv`` (ELBO curve, convergence, gradient norms, k̂ from
``diagnostics.json``) and an MCMC section from a ``posterior.nc`` with sample statistics.
"""

from __future__ import annotations

import base64
import math
import platform
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from bayesvae.runs import RunFolder, open_run

__all__ = ["build", "Section", "Report", "FAMILY_SECTIONS", "register_section"]

DIAGNOSTICS_FILE = "diagnostics.json"
MCMC_FIGURES = ("trace.png", "rank.png", "energy.png")


@dataclass
class Section:
    """One part of a report: text, warnings (``problems``), passed checks, tables and figures
    (PNG files in the run folder)."""

    title: str
    #: two or three plain sentences first: what the section means for the reader's decision
    lead: list[str] = field(default_factory=list)
    #: a decision, styled by what it means: ``{"kind": "choose"|"equivalent"|"collect",
    #: "text": ...}``
    decision: dict[str, str] | None = None
    #: warnings the reader must see before the decision (e.g. failed data checks)
    alerts: list[str] = field(default_factory=list)
    text: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    checks: list[str] = field(default_factory=list)
    tables: list[dict[str, str]] = field(default_factory=list)
    figures: list[dict[str, str]] = field(default_factory=list)

    def add_table(self, caption: str, frame: Any, *, index: bool = False, digits: int = 4) -> None:
        """A table, every number formatted by its magnitude (see :func:`format_number`)."""
        rounded = frame.map(lambda value: format_number(value, digits))
        from markupsafe import Markup

        self.tables.append(
            {
                "caption": caption,
                # both are generated here with every value escaped: safe to insert as markup
                "html": Markup(rounded.to_html(index=index, border=0, escape=True)),
                "markdown": Markup(_markdown_table(rounded, index=index)),
            }
        )

    def add_figure(self, run: RunFolder, filename: str, caption: str) -> None:
        """Embed the run's PNG ``filename`` (nothing when the run has none)."""
        path = run.file(filename)
        if path.is_file():
            encoded = base64.b64encode(path.read_bytes()).decode("ascii")
            self.figures.append(
                {
                    "file": filename,
                    "caption": caption,
                    "data_uri": f"data:image/png;base64,{encoded}",
                }
            )


def format_number(value: Any, digits: int = 4) -> Any:
    """A number as a reader wants it: whole numbers (counts, ESS) without decimals, small ones
    (an MCSE of 0.00004) with two significant digits rather than rounded to 0, the rest to
    ``digits`` decimals; anything else as it is."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        return value
    value = float(value)
    if not math.isfinite(value):
        return str(value)
    if (value.is_integer() and abs(value) >= 1) or abs(value) >= 1000:
        return f"{value:.0f}"
    if value != 0 and abs(value) < 10 ** (-digits + 1):
        return f"{value:.2g}"
    if abs(value) >= 100:
        return f"{value:.1f}"
    return f"{value:.{digits}f}".rstrip("0").rstrip(".")


@dataclass(frozen=True)
class Report:
    """Paths of the written report files."""

    html: Path
    markdown: Path


SectionBuilder = Callable[[RunFolder, dict[str, Any]], list[Section]]
#: family name (``config.yaml``'s ``family``) -> builder of that family's sections
FAMILY_SECTIONS: dict[str, SectionBuilder] = {}


def register_section(family: str) -> Callable[[SectionBuilder], SectionBuilder]:
    """Decorator registering the section builder of a model family."""

    def decorate(builder: SectionBuilder) -> SectionBuilder:
        FAMILY_SECTIONS[family] = builder
        return builder

    return decorate


def _markdown_cell(value: Any) -> str:
    """A table cell's text for Markdown: HTML escaped (a user's word is data, never markup),
    pipes and line breaks neutralised so one value stays in one cell."""
    import html

    text = html.escape(str(value), quote=True)
    return text.replace("|", "&#124;").replace("\r", " ").replace("\n", " ")


def _markdown_table(frame: Any, *, index: bool) -> str:
    table = frame.reset_index() if index else frame
    header = "| " + " | ".join(_markdown_cell(c) for c in table.columns) + " |"
    rule = "|" + "---|" * len(table.columns)
    rows = [
        "| " + " | ".join(_markdown_cell(v) for v in row) + " |"
        for row in table.itertuples(index=False)
    ]
    return "\n".join([header, rule, *rows])


def _code_fence(text: str) -> str:
    """A backtick fence longer than any run of backticks in ``text`` (so it cannot close early)."""
    import re

    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)


def _interval(bounds: list[float], fmt: str) -> str:
    return "[" + ", ".join(fmt.format(b) for b in bounds) + "]"


# -------------------------------------------------------------------------- generic sections
def _svi_section(run: RunFolder, config: dict[str, Any]) -> list[Section]:

    from bayesvae.diagnostics import elbo_convergence
    from bayesvae.report import plots

    history = run.metrics()
    if history is None:
        return []
    section = Section("Stochastic variational inference")
    last = history.iloc[-1]
    if "step" in history:  # a program: rows every eval_every steps
        done = f"{int(history['step'].iloc[-1])} steps"
        speed = f"{history['steps_per_s'].median():.0f} steps/s median"
    else:
        done = f"{len(history)} epochs"
        speed = f"{history['samples_per_s'].median():.0f} samples/s median"
    section.text.append(
        f"{done} in {history['seconds'].sum():.1f} s ({speed}). Final train ELBO "
        f"{last['train_elbo']:.3f} nats per data point"
        + (f", validation ELBO {last['val_elbo']:.3f}" if "val_elbo" in history else "")
        + "."
    )
    verdict = elbo_convergence(
        history, column="val_elbo" if "val_elbo" in history else "train_elbo"
    )
    if "step" in history:  # a program's rows are evaluations every eval_every steps
        verdict["reason"] = verdict["reason"].replace("epochs", "evaluations")
    (section.checks if verdict["converged"] else section.problems).append(
        "ELBO "
        + ("converged: " if verdict["converged"] else "not yet converged: ")
        + verdict["reason"]
        + "."
    )
    section.lead.append(
        "Training has settled: the ELBO stopped improving, so more epochs would change little."
        if verdict["converged"]
        else "Training had not settled when it stopped: the ELBO was still moving. Train longer "
        "(or raise the learning rate) before relying on the fit."
    )
    if not run.has("loss_curves.png"):
        plots.loss_curves(history, run.file("loss_curves.png"))
        run.record("loss_curves.png")
    unit = "step" if "step" in history else "epoch"
    section.add_figure(run, "loss_curves.png", f"ELBO per data point by {unit}, and its terms")
    if "grad_norm" in history and history["grad_norm"].notna().any():
        plots.gradient_norms(history, run.file("grad_norm.png"))
        run.record("grad_norm.png")
        section.add_figure(run, "grad_norm.png", f"mean gradient norm by {unit}")
    psis = run.json(DIAGNOSTICS_FILE).get("psis")
    if psis:
        text = (
            f"Guide quality by PSIS (Yao et al. 2018), {psis['num_samples']} draws: verdict "
            f"{psis['verdict']} (k̂ < 0.5 good, < 0.7 usable, else untrustworthy)"
        )
        if psis.get("khat") is not None:
            text += f"; k̂ = {psis['khat']:.3f}."
            if psis.get("khat_median") is not None:
                text += (
                    f" Per data point (every latent is in plate {psis['local_plate']!r}): "
                    f"median k̂ {psis['khat_median']:.3f}, {psis['share_bad_points']:.1%} of "
                    "points with k̂ >= 0.7."
                )
        else:
            text += (
                f"; per data point: median k̂ {psis['khat_median']:.3f}, "
                f"{psis['share_bad_points']:.1%} of points with k̂ >= 0.7."
            )
        (section.checks if psis["verdict"] == "good" else section.problems).append(text)
        section.lead.append(
            {
                "good": "The fitted guide is a trustworthy stand-in for the posterior here.",
                "usable": "The fitted guide is usable for summaries, but its tails are off: "
                "check key numbers against NUTS.",
            }.get(
                psis["verdict"],
                "The fitted guide does not match the posterior well: do not trust its "
                "uncertainty; use NUTS or a richer guide.",
            )
        )
        if run.has("khat.png"):
            section.add_figure(run, "khat.png", "Pareto k̂ per data point")
    bounds = run.json(DIAGNOSTICS_FILE).get("bounds")
    if bounds:
        section.checks.append(_bounds_text(bounds))
    return [section]


def _bounds_text(bounds: dict[str, Any]) -> str:
    """One sentence on ``ELBO <= log p(x) <= CUBO`` (see :func:`bayesvae.diagnostics.sandwich`)."""
    where = (
        f"per data point (mean over {bounds['rows']} points)"
        if bounds.get("local_plate")
        else "for the whole data set"
    )
    return (
        f"Bounds on log p(x) {where}, {bounds['num_samples']} guide draws: ELBO "
        f"{bounds['elbo']:.3f} <= importance-sampled {bounds['iwae']:.3f} <= log p(x) <= CUBO "
        f"{bounds['cubo']:.3f} nats; the sandwich is {bounds['width']:.3f} nats wide (0 for a "
        "guide equal to the posterior; the CUBO holds as the draws grow)."
    )


def _mcmc_section(run: RunFolder, config: dict[str, Any]) -> list[Section]:
    from bayesvae.diagnostics import mcmc_checks
    from bayesvae.report import plots

    idata = run.inference_data()
    if idata is None or "sample_stats" not in idata.groups():
        return []
    hdi_prob = float((config.get("analysis") or {}).get("hdi_prob") or 0.95)
    checks = mcmc_checks(idata, hdi_prob=hdi_prob)
    section = Section("MCMC diagnostics")
    section.lead.append(
        "The chains agree and mixed well: the posterior summaries below can be used."
        if not checks["problems"]
        else "The chains disagree or mixed poorly (see the warnings): treat the summaries "
        "below with caution, and run longer chains or reparameterize."
    )
    section.text.append(
        f"{idata.posterior.sizes['chain']} chains x {idata.posterior.sizes['draw']} draws. "
        f"Thresholds: R-hat <= {checks['thresholds']['r_hat']}, bulk and tail ESS >= "
        f"{checks['thresholds']['ess']}, no divergences, BFMI >= {checks['thresholds']['bfmi']}."
    )
    section.problems.extend(checks["problems"])
    if not checks["problems"]:
        section.checks.append(
            f"no convergence problems; {checks['divergences']} divergences; "
            + (
                f"BFMI {', '.join(f'{b:.2f}' for b in checks['bfmi'])}."
                if len(checks["bfmi"])
                else "no energy recorded (Pyro's NUTS), so no BFMI."
            )
        )
    section.add_table(
        f"posterior summary (ArviZ; {hdi_prob:.0%} HDI)", checks["summary"], index=True
    )
    plots.mcmc_figures(idata, run.path)
    run.record(*(name for name in MCMC_FIGURES if run.has(name)))
    section.add_figure(run, "trace.png", "trace plots")
    section.add_figure(run, "rank.png", "rank plots (uniform when chains mix)")
    section.add_figure(run, "energy.png", "energy: marginal vs transition (BFMI)")
    return [section]


# ------------------------------------------------------------------------- family sections
def _vae_description(family: str, model: dict[str, Any]) -> str:
    if family == "GumbelSoftmaxVAE":
        latent = (
            f"{model['num_variables']} categorical latent variables of {model['categories']} "
            f"classes (Gumbel-softmax, temperature {model['temperature']} annealed to at least "
            f"{model['min_temperature']} at rate {model['anneal_rate']} per step)"
        )
    elif family == "HierarchicalVAE":
        latent = f"latent layers z1 of {model['latent_dim']} and z2 of {model['top_latent_dim']}"
    else:
        latent = f"latent dimension {model['latent_dim']}"
    text = (
        f"{model['encoder'].upper()} encoder/decoder, input {tuple(model['input_shape'])}, "
        f"{latent}, hidden {model['hidden_dims']}, {model['likelihood']} likelihood, "
        f"β = {model['beta']}."
    )
    if model.get("flows"):
        text += f" Guide: Gaussian followed by {model['flows']} {model['flow_type']} flow(s)."
    if family == "ConditionalVAE":
        text += f" Conditioned on {model['num_classes']} classes."
    if family == "AdversarialVAE":
        text += (
            f" Guide: implicit, z = g(x, eps) with {model['noise_dim']}-dimensional noise; its "
            "KL is the density-ratio estimate of a discriminator (Mescheder et al. 2017). "
            "Likelihoods and bounds below use a Gaussian proposal trained alongside (an "
            "implicit guide has no density)."
        )
    if family == "SemiSupervisedVAE":
        text += (
            f" The label is a latent of {model['num_classes']} classes: observed where known, "
            "summed out by enumeration elsewhere; the classifier q(y | x) gets weight "
            f"{model['classifier_weight']} on each labelled row (Kingma et al. 2014)."
        )
    if family == "MixturePriorVAE":
        text += (
            f" Prior: a learned mixture of {model['components']} Gaussians, the component "
            "summed out by enumeration."
        )
    return text


@register_section("VAE")
@register_section("ConditionalVAE")
@register_section("HierarchicalVAE")
@register_section("GumbelSoftmaxVAE")
@register_section("MixturePriorVAE")
@register_section("SemiSupervisedVAE")
@register_section("AdversarialVAE")
def _vae_sections(run: RunFolder, config: dict[str, Any]) -> list[Section]:
    import pandas as pd

    model = config["model"]
    section = Section(
        {
            "VAE": "Variational autoencoder",
            "ConditionalVAE": "Conditional variational autoencoder",
            "HierarchicalVAE": "Hierarchical variational autoencoder",
            "GumbelSoftmaxVAE": "Discrete-latent (Gumbel-softmax) VAE",
            "MixturePriorVAE": "VAE with a Gaussian-mixture prior",
            "SemiSupervisedVAE": "Semi-supervised VAE (M2)",
            "AdversarialVAE": "Adversarial Variational Bayes (implicit guide)",
        }[config["family"]]
    )
    section.text.append(_vae_description(config["family"], model))
    history = run.metrics()
    if history is not None:
        layers = sorted(c for c in history.columns if c.startswith("kl_") and c != "kl_weight")
        if layers:
            last = history.iloc[-1]
            section.text.append(
                "KL per latent layer after the last epoch (nats per data point): "
                + ", ".join(f"{c[3:]} {last[c]:.3f}" for c in layers)
                + "."
            )
            inactive = [c[3:] for c in layers if last[c] < 0.1]
            if inactive:
                section.problems.append(f"inactive latent layer(s) {inactive}: KL below 0.1 nats.")
    diagnostics = run.json(DIAGNOSTICS_FILE).get("vae")
    if diagnostics and "active_units" not in diagnostics:
        section.text.append(
            f"On {diagnostics['num_points']} held-out points: ELBO {diagnostics['elbo']:.3f}, "
            f"importance-weighted log-likelihood (K={diagnostics['num_samples']}) "
            f"{diagnostics['iwae']:.3f} nats per data point."
        )
    elif diagnostics:
        section.text.append(
            f"On {diagnostics['num_points']} held-out points: ELBO {diagnostics['elbo']:.3f}, "
            f"importance-weighted log-likelihood (K={diagnostics['num_samples']}) "
            f"{diagnostics['iwae']:.3f} nats per data point; ELBO-IWAE gap "
            f"{diagnostics['gap']:.3f}."
        )
        active = f"{diagnostics['active_units']} of {diagnostics['latent_dim']} latent dimensions"
        if diagnostics["active_units"] < max(1, diagnostics["latent_dim"] // 2):
            section.problems.append(f"posterior collapse: only {active} are active.")
            section.lead.append(
                "Most latent dimensions carry no information about the inputs (posterior "
                "collapse): use fewer latent dimensions, KL warm-up, or a weaker decoder."
            )
        else:
            section.lead.append(
                f"The model uses its latent space ({active} active) and its held-out "
                "likelihood is below; compare it with other fits by that number."
            )
            section.checks.append(f"{active} are active (variance of the posterior mean > 0.01).")
        section.add_table(
            "per latent dimension",
            pd.DataFrame(
                {
                    "dimension": range(diagnostics["latent_dim"]),
                    "KL (nats)": diagnostics["kl_per_dimension"],
                    "Var of posterior mean": diagnostics["posterior_mean_variance"],
                }
            ),
        )
    classifier = run.json(DIAGNOSTICS_FILE).get("classifier")
    if classifier:
        text = f"Semi-supervised: trained with {classifier['labelled']} labels"
        if classifier.get("val_accuracy") is not None:
            text += (
                f"; the classifier q(y | x) labels {classifier['val_accuracy']:.1%} of the "
                "held-out rows correctly"
            )
        section.text.append(text + ".")
    section.add_figure(run, "reconstructions.png", "originals (top) and reconstructions")
    section.add_figure(run, "samples.png", "samples from the generative model (decoder means)")
    section.add_figure(run, "latent.png", "latent space: posterior means coloured by label")
    section.add_figure(run, "interpolation.png", "spherical interpolation between two inputs")
    section.add_figure(run, "traversals.png", "traversals: one latent dimension per row, -3 to 3")
    section.add_figure(run, "manifold.png", "2-D manifold: inverse-normal-CDF grid, decoded")
    return [section, *_vae_anomaly_section(run, config)]


def _vae_anomaly_section(run: RunFolder, config: dict[str, Any]) -> list[Section]:
    """The ``bayesvae vae-anomaly`` run's scores: what was flagged, AUC against labels."""
    result = run.json("result.json")
    if result.get("detector") != "VAEAnomalyDetector":
        return []
    section = Section("VAE anomaly scores")
    section.lead.append(
        f"{result['flagged']} of {result['rows']} rows score as anomalous: the VAE finds them "
        "unlikely (a low ELBO) compared with the bulk of the data. Review the rows in the "
        "table below first."
    )
    section.text.append(
        f"Score: the negative {result['score'].upper()} bound in nats (higher = more "
        f"anomalous); rows above {-result['threshold_score']:.3f} are flagged (the training "
        "data's contamination quantile)."
    )
    if "aucroc" in result:
        section.checks.append(
            f"against the labels: AUCROC {result['aucroc']:.4f}, AUCPR {result['aucpr']:.4f}."
        )
    scores = run.csv("scores.csv")
    if scores is not None:
        top = scores.sort_values("anomaly_score", ascending=False).head(10)
        section.add_table("the ten rows with the highest anomaly scores", top, digits=4)
    section.add_figure(run, "scores.png", "distribution of the anomaly scores")
    return [section]


@register_section("BetaBinomialABTest")
@register_section("GammaPoissonABTest")
@register_section("NegativeBinomialABTest")
@register_section("NormalABTest")
@register_section("RevenueABTest")
def _abtest_sections(run: RunFolder, config: dict[str, Any]) -> list[Section]:
    """One section for the data checks (when any), then one per metric."""
    stored = run.json("result.json")
    if not stored:
        return []
    results = stored.get("results", [stored])
    shared = stored.get("checks", []) if "results" in stored else []
    sections = []
    if shared:
        checks = Section("Data checks")
        _add_checks(checks, shared)
        failed = [c for c in shared if not c["passed"]]
        checks.lead.append(
            f"{len(failed)} of {len(shared)} checks of the data failed: read every result "
            "below with that in mind."
            if failed
            else "The data pass every check: the arm sizes match the allocation and each "
            "unit was counted once."
        )
        sections.append(checks)
    rope = (config.get("analysis") or {}).get("rope")
    for index, result in enumerate(results):
        suffix = "" if len(results) == 1 else f"_{index}"
        sections.append(_abtest_section(run, result, suffix, rope))
    return sections


def _add_checks(section: Section, checks: list[dict[str, Any]]) -> None:
    """Passed checks with the other checks; failed ones as alerts, above any decision."""
    for check in checks:
        target = section.checks if check["passed"] else section.alerts
        target.append(f"{check['name']}: {check['summary']}")


def _abtest_section(
    run: RunFolder, result: dict[str, Any], suffix: str, rope: float | None
) -> Section:
    import pandas as pd

    metric = result.get("metric", "conversion")
    outcome = result.get("outcome")
    title = "A/B test" if outcome is None else f"A/B test: {outcome} ({metric})"
    section = Section(title)
    decision = result["decision"]
    kind = {"choose": "choose", "equivalent": "equivalent"}.get(decision["action"], "collect")
    failed = [c for c in result.get("checks", []) if not c["passed"]]
    section.lead.append(
        {
            "choose": f"The data support shipping {decision.get('arm')}: the expected loss of "
            "choosing it is below the threshold you set.",
            "equivalent": "The arms perform the same within the region of practical "
            "equivalence: pick on other grounds (cost, simplicity).",
            "collect": "The data do not yet support a choice: no arm is clearly best, and the "
            "arms are not shown to be equivalent. Keep the test running.",
        }[kind]
    )
    if failed:
        section.lead.append(
            f"But {len(failed)} check(s) of the data failed (listed first below): resolve "
            "them before acting on the decision."
        )
    _add_checks(section, result.get("checks", []))
    section.decision = {"kind": kind, "text": f"{decision['text']} ({decision['reason']})"}
    section.text.append(
        f"Model: {result.get('likelihood', 'Beta-Binomial')}; method: {result['method']}; "
        f"control: {result['control']}."
    )
    pct = f"{result['hdi_prob']:.0%} HDI"
    section.add_table(
        "arms",
        pd.DataFrame(
            [
                {
                    "arm": a["arm"],
                    "observed": a.get("observed") or f"{a['successes']}/{a['trials']}",
                    "posterior mean": a["posterior_mean"],
                    pct: f"[{format_number(a['hdi'][0], 5)}, {format_number(a['hdi'][1], 5)}]",
                    "P(best)": a["prob_best"],
                    "± MC s.e.": a["prob_best_se"],
                    "expected loss": a["expected_loss"],
                }
                for a in result["arms"]
            ]
        ),
        digits=5,
    )
    section.add_table(
        f"lift over {result['control']}",
        pd.DataFrame(
            [
                {
                    "arm": row["arm"],
                    "absolute": row["absolute_mean"],
                    f"absolute {pct}": _interval(row["absolute_hdi"], "{:+.5g}"),
                    "relative": f"{row['relative_mean']:+.2%}",
                    f"relative {pct}": _interval(row["relative_hdi"], "{:+.2%}"),
                    "P(better)": row["prob_better"],
                }
                for row in result["lift"]
            ]
        ),
        digits=5,
    )
    if result.get("shrinkage"):
        section.text.append(
            "The hierarchical model pools the arms: each arm's rate is drawn towards the "
            "population mean, most where it rests on few units. The table shows how far each "
            "moved from the flat model (independent Beta(1, 1) priors)."
        )
        section.add_table(
            "shrinkage: flat against pooled posterior means",
            pd.DataFrame(result["shrinkage"]).rename(
                columns={
                    "observed": "observed rate",
                    "flat_mean": "flat mean",
                    "pooled_mean": "pooled mean",
                    "shift": "pooled - flat",
                }
            ),
            digits=5,
        )
        section.add_figure(run, f"shrinkage{suffix}.png", "flat and pooled posterior means")
    section.add_figure(run, f"posteriors{suffix}.png", "posterior density of each arm's value")
    section.add_figure(
        run,
        f"lift{suffix}.png",
        "lift over the control, HDI shaded" + (f", ROPE ±{rope:g} marked" if rope else ""),
    )
    section.add_figure(run, f"prob_best{suffix}.png", "probability that each arm is best")
    return section


@register_section("AnomalyMixture")
@register_section("AnomalyMixtureModel")
def _anomaly_sections(run: RunFolder, config: dict[str, Any]) -> list[Section]:
    import pandas as pd

    result = run.json("result.json")
    if not result:
        return []
    section = Section("Anomaly mixture")
    low, high = result["contamination_interval"]
    section.lead.append(
        f"{result['flagged']} of {result['rows']} rows look anomalous (more likely from the "
        f"broad anomaly component than from the normal data, P > {result['threshold']:g}); the "
        f"data hold about {100 * low:.1f}-{100 * high:.1f} % anomalies. Review the rows in "
        "the table below first."
    )
    section.text.append(
        f"{result['method'].upper()} fit of {result['n_components']} Gaussian component(s) "
        f"({result['covariance']} covariance) plus a broad anomaly component on "
        f"{result['rows']} rows x {len(result['features'])} features."
    )
    if result.get("shape_reason"):
        section.text.append(f"Shape: {result['shape_reason']}")
    if result.get("shape_selection"):
        section.add_table(
            "choice of K: held-out log predictive density per row",
            pd.DataFrame(result["shape_selection"]).rename(
                columns={
                    "n_components": "K",
                    "heldout_log_density": "held-out log density",
                    "standard_error": "± s.e.",
                }
            ),
        )
    section.checks.append(
        f"contamination: posterior mean {result['contamination_mean']:.4f}, 90 % interval "
        f"[{low:.4f}, {high:.4f}]; {result['flagged']} rows flagged "
        f"(P(anomaly | x) > {result['threshold']:g})."
    )
    if "aucroc" in result:
        section.checks.append(
            f"against the labels: AUCROC {result['aucroc']:.4f}, AUCPR {result['aucpr']:.4f}."
        )
    scores = run.csv("scores.csv")
    if scores is not None:
        top = scores.sort_values("p_anomaly", ascending=False).head(10)
        section.add_table("the ten rows most likely anomalous", top, digits=4)
    section.add_figure(run, "scores.png", "distribution of P(anomaly | x)")
    section.add_figure(run, "projection.png", "the data in 2-D, flagged rows ringed")
    return [section]


@register_section("SentenceVAE")
def _sentence_vae_sections(run: RunFolder, config: dict[str, Any]) -> list[Section]:
    import pandas as pd

    result = run.json("result.json")
    if not result:
        return []
    model = config["model"]
    section = Section("Sentence VAE")
    section.lead.append(
        "The decoder ignores the latent code (posterior collapse, KL about 0): the model is a "
        "language model, and its latent space holds nothing. Raise word dropout, KL warm-up or "
        "free bits."
        if result["collapsed"]
        else f"The latent code carries {result['kl']:.2f} nats per sentence: sentences are "
        "encoded, and nearby codes decode to related sentences (the homotopy below)."
    )
    section.text.append(
        f"{model['rnn'].upper()} encoder and decoder ({model['hidden_dim']} units, embeddings of "
        f"{model['embedding_dim']}), latent dimension {model['latent_dim']}, "
        f"{result['vocab_size']} words, word dropout {model['word_dropout']}"
        + (f", free bits {model['free_bits']}" if model["free_bits"] else "")
        + f"; {result['epochs']} epochs in {result['seconds']:.1f} s."
    )
    (section.problems if result["collapsed"] else section.checks).append(
        f"Held out ({result['num_eval']} sentences, importance sampling with K = "
        f"{result['num_samples']}): NLL {result['nll']:.2f} nats per sentence, perplexity "
        f"{result['ppl_word']:.1f} per word (<eos> counted), KL {result['kl']:.3f} nats."
    )
    section.add_table("samples from the prior", pd.DataFrame({"sentence": result["samples"]}))
    if result["homotopy"]:
        section.add_table(
            "homotopy: greedy decodings between two held-out sentences' codes",
            pd.DataFrame({"step": range(len(result["homotopy"])), "sentence": result["homotopy"]}),
        )
    section.add_table(
        "held-out sentences and their greedy reconstructions",
        pd.DataFrame(result["reconstructions"], columns=["sentence", "reconstruction"]),
    )
    return [section]


@register_section("ProdLDA")
def _prodlda_sections(run: RunFolder, config: dict[str, Any]) -> list[Section]:
    import pandas as pd

    result = run.json("result.json")
    if not result:
        return []
    section = Section("Topic model (ProdLDA)")
    coherent = result["npmi_mean"] >= 0.1
    section.lead.append(
        f"{result['num_topics']} topics were found; "
        + (
            "on average their top words co-occur clearly more than chance, so the topics are "
            "readable themes."
            if coherent
            else "their top words co-occur little more than chance (low NPMI): read the topics "
            "with care, or fit longer, or with fewer topics."
        )
    )
    section.text.append(
        f"{result['num_topics']} topics over {result['vocab_size']} words, fitted on "
        f"{result['documents']} documents with the {result['backend']} backend "
        f"({result['epochs']} epochs, {result['seconds']:.1f} s)."
    )
    section.checks.append(
        f"NPMI coherence (top 10 words, reference: {result['npmi_reference']}): "
        f"{result['npmi_mean']:.4f}; topic diversity (top 25): {result['diversity']:.3f}; "
        f"perplexity <= {result['perplexity']:.1f} on the {result['perplexity_on']} (an upper "
        "bound: it comes from the ELBO)."
    )
    section.problems.extend(result.get("problems", []))
    section.add_table(
        "topics, best NPMI first",
        pd.DataFrame(
            [
                {"topic": t["topic"], "NPMI": t["npmi"], "top words": " ".join(t["words"])}
                for t in sorted(result["topics"], key=lambda t: -t["npmi"])
            ]
        ),
        digits=3,
    )
    section.add_figure(run, "top_words.png", "top words of each topic (first 20 topics)")
    return [section]


# --------------------------------------------------------------------------------- build
def _header(run: RunFolder, config: dict[str, Any]) -> dict[str, Any]:
    import pyro
    import torch

    from bayesvae._version import __version__

    fit = config.get("fit") or config.get("analysis") or {}
    rows = [
        ("family", config["family"]),
        ("run folder", run.name),
    ]
    recorded = config.get("versions")
    if recorded:  # the versions the run was fitted with
        rows.append(("versions at fit time", ", ".join(f"{k} {v}" for k, v in recorded.items())))
    else:
        rows += [
            ("bayesvae", config.get("bayesvae_version", __version__)),
            (
                "versions now",
                f"Python {platform.python_version()}, torch {torch.__version__}, "
                f"pyro {pyro.__version__}",
            ),
        ]
    for key in ("device", "seed", "method", "epochs", "elbo"):
        if key in fit:
            rows.append((key, fit[key]))
    frame = run.metrics()
    if frame is not None:
        seconds = float(frame["seconds"].sum()) if "seconds" in frame else math.nan
        if math.isfinite(seconds):
            rows.append(("training time", f"{seconds:.1f} s"))
    return {"summary": f"Run report for a {config['family']} run.", "rows": rows}


def build(run_dir: str | Path | RunFolder, *, title: str | None = None) -> Report:
    """Write ``report.html`` and ``report.md`` into the run folder ``run_dir``; return their paths.

    The HTML is one self-contained file: inline CSS, figures embedded as ``data:`` URIs, no
    script and nothing fetched from anywhere.
    """
    from jinja2 import Environment, PackageLoader
    from markupsafe import Markup

    run = run_dir if isinstance(run_dir, RunFolder) else open_run(run_dir)
    run.verify()  # a report of files changed after the save would describe another run
    config = run.config
    sections: list[Section] = []
    builder = FAMILY_SECTIONS.get(config["family"])
    if builder is not None:
        try:
            sections += builder(run, config)
        except (KeyError, TypeError) as err:  # a config or file missing what its family writes
            raise ValueError(
                f"{run} does not hold what a {config['family']} report needs ({err!r} is "
                "missing or malformed); was it written by bayesvae?"
            ) from None
    sections += _svi_section(run, config)
    sections += _mcmc_section(run, config)
    context = {
        "title": title or f"bayesvae report: {run.name}",
        "header": _header(run, config),
        "sections": sections,
        "config_text": yaml.safe_dump(config, sort_keys=False),
    }
    config_fence = _code_fence(context["config_text"])
    # Autoescape is on for both templates: every user string (arm names, columns, words, the
    # title, the folder name, config values) is data. In Markdown an escaped "&lt;" renders as
    # "<", never as a tag. Only markup generated here with its values escaped is passed as is.
    env = Environment(
        loader=PackageLoader("bayesvae.report", "templates"),
        autoescape=True,
        keep_trailing_newline=True,
    )
    # inside a Markdown code fence nothing is markup, so the YAML goes in verbatim
    context_md = {
        **context,
        "config_text": Markup(context["config_text"].replace("\r", "")),
        "config_fence": Markup(config_fence),
    }
    html = env.get_template("report.html.j2").render(**context)
    markdown = env.get_template("report.md.j2").render(**context_md)
    return Report(
        html=run.write_text("report.html", html), markdown=run.write_text("report.md", markdown)
    )
