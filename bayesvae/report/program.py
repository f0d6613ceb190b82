"""The report of a user's own Pyro program: :func:`report` writes a run folder for an SVI fit,
an MCMC fit, or both of the same model, then builds its HTML and Markdown pages.

The folder holds ``config.yaml`` (the program's name and source, its arguments' shapes, the fit
settings, the versions it ran with), ``metrics.csv`` (SVI), ``svi.nc`` and ``posterior.nc``
(ArviZ), ``diagnostics.json`` (PSIS k̂), ``comparison.csv`` (guide against NUTS) and figures.
"""

from __future__ import annotations

import inspect
import logging
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from bayesvae.diagnostics.compare import GUIDE_MEAN_TOLERANCE, _scalar_draws, compare_posteriors
from bayesvae.infer.mcmc import MCMCResult
from bayesvae.infer.svi import FitResult
from bayesvae.models.program import PyroProgram, inspect_sites, named_inputs
from bayesvae.report.build import (
    DIAGNOSTICS_FILE,
    Report,
    Section,
    build,
    register_section,
)
from bayesvae.runs import RunFolder, RunWriter, save_program, writing

__all__ = ["report", "versions", "PROGRAM_FAMILY"]

logger = logging.getLogger(__name__)
PROGRAM_FAMILY = "PyroProgram"


def versions() -> dict[str, str]:
    """The versions of Python and the libraries a fit runs with (recorded in ``config.yaml``)."""
    from bayesvae._version import runtime_versions

    return runtime_versions()


def _source(fn: Any) -> str | None:
    try:
        return inspect.getsource(fn)
    except (OSError, TypeError):
        return None


def _describe(value: Any) -> str:
    shape = tuple(value.shape) if hasattr(value, "shape") else None
    if shape is not None:
        return f"{type(value).__name__} {shape} {value.dtype}"
    return repr(value) if np.isscalar(value) or value is None else type(value).__name__


def report(
    svi: FitResult | None = None,
    *,
    mcmc: MCMCResult | None = None,
    out: str | Path,
    title: str | None = None,
    num_samples: int = 500,
    seed: int = 0,
) -> Report:
    """Write a run folder for a user program's SVI fit and/or NUTS run at ``out`` and build its
    report (``report.html``, self-contained, and ``report.md``).

    Sections: the model (its graph by ``pyro.render_model`` when graphviz is installed, its
    source and its arguments), convergence (ELBO curve and plateau test; R-hat, ESS,
    divergences, rank plots), the posterior summary, posterior predictive checks, guide quality
    (PSIS k̂), PSIS-LOO with each point's k̂, and — given both fits of the same model — the guide
    against NUTS (means, sds, marginal densities overlaid).

    Args:
        svi: ``bayesvae.fit(program, ...)``'s result.
        mcmc: ``bayesvae.mcmc(program, ...)``'s result, of the same model when both are given.
        num_samples: guide draws for the SVI posterior.
    """
    if svi is None and mcmc is None:
        raise ValueError("report needs an SVI result (svi=), an MCMC result (mcmc=) or both.")
    if svi is not None and not (isinstance(svi, FitResult) and isinstance(svi.model, PyroProgram)):
        raise TypeError("svi must be the FitResult of bayesvae.fit on a Pyro program.")
    if mcmc is not None and not (isinstance(mcmc, MCMCResult) and mcmc.model is not None):
        raise TypeError("mcmc must be the MCMCResult of bayesvae.mcmc on a program.")
    fn = svi.model.model_fn if svi is not None else mcmc.model  # type: ignore[union-attr]
    if svi is not None and mcmc is not None and mcmc.model is not svi.model.model_fn:
        raise ValueError("svi and mcmc are fits of different models; compare fits of one model.")
    args, kwargs = svi.data if svi is not None else mcmc.data  # type: ignore[union-attr,misc]
    model_config = {
        "model": fn.__qualname__ if inspect.isfunction(fn) else type(fn).__qualname__,
        "guide": svi.model.guide_name if svi is not None else None,
    }
    program = {
        "source": _source(fn),
        "arguments": {k: _describe(v) for k, v in named_inputs(fn, args, kwargs).items()},
    }
    mcmc_config = None
    if mcmc is not None:
        mcmc_config = {
            "backend": mcmc.backend,
            "num_chains": mcmc.num_chains,
            "num_samples": mcmc.num_samples,
            "num_warmup": mcmc.num_warmup,
            "seconds": round(mcmc.seconds, 2),
        }
    with writing(out) as run:
        svi_idata = None
        if svi is not None:  # the fit itself, so bayesvae.load(out, model=fn) works
            save_program(svi.model, svi.data, run, history=svi.history, fit_config=svi.settings)
            svi_idata = svi.to_inference_data(num_samples=num_samples, seed=seed)
            run.write_netcdf("svi.nc", svi_idata)
            _write_psis(svi, run, seed)
        if mcmc is not None:
            run.write_netcdf("posterior.nc", mcmc.inference_data)
        if svi_idata is not None and mcmc is not None:
            run.write_csv("comparison.csv", compare_posteriors(svi_idata, mcmc))
            from bayesvae.report import plots

            latent = [n for n in mcmc.inference_data.posterior.data_vars]
            plots.marginals_overlay(
                _scalar_draws(svi_idata, latent),
                _scalar_draws(mcmc.inference_data, latent),
                run.file("guide_vs_nuts.png"),
            )
        _render_model(fn, args, kwargs, run)
        run.write_config(
            PROGRAM_FAMILY,
            model_config,
            program=program,
            fit=dict(svi.settings) if svi is not None else None,
            mcmc=mcmc_config,
        )
        build(run.reader(), title=title)
    return Report(html=run.path / "report.html", markdown=run.path / "report.md")


def _write_psis(svi: FitResult, run: RunWriter, seed: int) -> None:
    """k̂ and the ELBO/CUBO bounds from one set of 1,000 guide draws: per data point when every
    latent sits in one plate (the joint weights are then their sum over the points)."""
    from bayesvae.diagnostics import PSISResult, Sandwich, importance_log_weights

    args, kwargs = svi.data  # type: ignore[misc]
    local = inspect_sites(svi.model.model_fn, args, kwargs).local_plate()
    log_weights = importance_log_weights(
        svi.model, *args, num_samples=1000, local_plate=local, seed=seed, **kwargs
    )
    result = PSISResult.from_log_weights(log_weights.sum(1) if local else log_weights)
    payload = {"num_samples": result.num_samples, "verdict": result.verdict, "khat": result.khat}
    if local is not None:  # every latent is per data point: k̂ per point too
        per_point = PSISResult.from_log_weights(log_weights)
        payload.update(
            local_plate=local,
            khat_median=float(np.median(per_point.khat_per_point)),
            share_bad_points=per_point.share_bad_points,
        )
        from bayesvae.report import plots

        plots.khat_per_point(per_point.khat_per_point, run.file("khat.png"))
    bounds = Sandwich.from_log_weights(log_weights, local)
    run.write_json(DIAGNOSTICS_FILE, {"psis": payload, "bounds": bounds.summary()})


def _render_model(fn: Any, args: tuple, kwargs: dict, run: RunWriter) -> None:
    """``model.png`` from ``pyro.render_model``; a ``model_graph.txt`` note when graphviz (the
    Python package or the ``dot`` program) is missing."""
    import shutil

    note = "model_graph.txt"
    try:
        import graphviz  # noqa: F401
    except ImportError:
        run.write_text(note, "pip install graphviz (and the Graphviz 'dot' program) to draw it.")
        return
    if shutil.which("dot") is None:
        run.write_text(
            note, "install the Graphviz 'dot' program (apt-get install graphviz) to draw it."
        )
        return
    import pyro

    try:
        graph = pyro.render_model(
            fn, model_args=args, model_kwargs=kwargs, render_distributions=True
        )
        png = graph.pipe(format="png")
    except Exception as err:  # noqa: BLE001  (a drawing failure must not lose the report)
        run.write_text(note, f"the model graph could not be drawn: {type(err).__name__}: {err}")
        return
    from bayesvae.runs.files import atomic_write

    atomic_write(run.file("model.png"), lambda handle: handle.write(png))


# --------------------------------------------------------------------------------- sections
@register_section(PROGRAM_FAMILY)
def _program_sections(run: RunFolder, config: dict[str, Any]) -> list[Section]:
    import arviz as az

    from bayesvae.report import plots

    sections = []
    model = Section("Model")
    model.lead.append(
        "Your Pyro program as bayesvae ran it: check that the graph below is the model you "
        "meant (which variables depend on which, what is observed)."
    )
    arguments = config.get("program", {}).get("arguments", {})
    model.text.append(
        f"A Pyro program, {config['model']['model']}, given "
        + ", ".join(f"{k}: {v}" for k, v in arguments.items())
        + "."
    )
    if run.has("model.png"):
        model.add_figure(run, "model.png", "the model as Pyro renders it (pyro.render_model)")
    elif run.has("model_graph.txt"):
        model.problems.append("No model graph: " + run.file("model_graph.txt").read_text())
    sections.append(model)

    svi_idata, mcmc_idata = run.inference_data("svi.nc"), run.inference_data("posterior.nc")
    main = mcmc_idata if mcmc_idata is not None else svi_idata
    source = "NUTS" if mcmc_idata is not None else "the SVI guide"
    if main is not None:
        summary = Section("Posterior summary")
        summary.lead.append(
            "What the data say about each parameter: its mean and a 95 % interval that holds "
            f"it with 95 % probability, from {source}."
        )
        summary.text.append(
            f"Means, standard deviations and 95 % highest-density intervals from {source}"
            + (
                "; the guide's draws are independent, so its table has no R-hat."
                if mcmc_idata is None
                else "."
            )
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            table = az.summary(main, hdi_prob=0.95, kind="stats" if mcmc_idata is None else "all")
        summary.add_table("posterior summary", table, index=True)
        sections.append(summary)

        ppc = Section("Posterior predictive checks")
        ppc.lead.append(
            "Does the model reproduce the data? If the observed data look like one of the "
            "simulated replications, yes; a systematic difference shows what the model misses."
        )
        ppc.text.append(
            "Data replicated from the fitted model against the observed data: if the observed "
            "curve or bars sit inside the replications, the model reproduces the data's shape."
        )
        plots.posterior_predictive(main, run.file("ppc.png"))
        run.record("ppc.png")
        ppc.add_figure(run, "ppc.png", f"posterior predictive check ({source})")
        sections.append(ppc)

        loo_section = Section("Leave-one-out cross-validation (PSIS-LOO)")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            loo = az.loo(main, pointwise=True)
        khat = np.asarray(loo.pareto_k).ravel()
        loo_section.text.append(
            f"Expected log predictive density {float(loo.elpd_loo):.2f} (SE {float(loo.se):.2f}), "
            f"effective parameters {float(loo.p_loo):.2f}, from {source}."
        )
        bad = int((khat > 0.7).sum())
        loo_section.lead.append(
            "How well the model predicts a point it has not seen, for comparing models (higher "
            "is better); "
            + (
                f"{bad} influential points make the estimate unreliable."
                if bad
                else "every point's estimate is reliable."
            )
        )
        (loo_section.problems if bad else loo_section.checks).append(
            f"{bad} of {khat.size} points have Pareto k̂ > 0.7"
            + (
                ": their leave-one-out estimates are unreliable (influential points)."
                if bad
                else "."
            )
        )
        plots.loo_khat(khat, run.file("loo_khat.png"))
        run.record("loo_khat.png")
        loo_section.add_figure(run, "loo_khat.png", "PSIS-LOO Pareto k̂ per data point")
        sections.append(loo_section)

    frame = run.csv("comparison.csv")
    if frame is not None:
        section = Section("The guide against NUTS")
        good = int(frame["agrees"].sum())
        section.lead.append(
            "The fast SVI guide agrees with exact-in-the-limit NUTS: its summaries can be used."
            if good == len(frame)
            else f"The fast SVI guide disagrees with NUTS on {len(frame) - good} of "
            f"{len(frame)} parameters: trust NUTS for those."
        )
        section.text.append(
            f"The SVI guide ({config['model']['guide']}) and NUTS on the same model and data. "
            f"A parameter agrees when the guide's mean is within {GUIDE_MEAN_TOLERANCE} NUTS "
            "standard deviations of NUTS's and its sd within a factor of 2."
        )
        (section.checks if good == len(frame) else section.problems).append(
            f"{good} of {len(frame)} parameters agree"
            + (
                ": the guide is good enough for these summaries."
                if good == len(frame)
                else "; for the others trust NUTS, or try a richer guide (mvn, iaf) or "
                "reparameterize."
            )
        )
        section.add_table("guide against NUTS, per parameter", frame, digits=3)
        section.add_figure(run, "guide_vs_nuts.png", "marginal densities: guide (dashed), NUTS")
        sections.append(section)
    return sections
