"""A gallery of classic Bayesian models written in plain Pyro (no bayesvae inside them), each
fitted with SVI (an AutoMultivariateNormal guide) and NUTS through the same calls, compared side
by side, and reported.

python examples/pyro_programs.py --model eight_schools_noncentered --out runs/eight-schools
python examples/pyro_programs.py --model all
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pyro
import pyro.distributions as dist
import torch


# --------------------------------------------------------------------------------- models
def eight_schools_centered(sigma, y=None):
    """Rubin's eight schools, centered: each school's effect drawn around the shared mean."""
    mu = pyro.sample("mu", dist.Normal(0.0, 5.0))
    tau = pyro.sample("tau", dist.HalfCauchy(5.0))
    with pyro.plate("school", len(sigma)):
        theta = pyro.sample("theta", dist.Normal(mu, tau))
        pyro.sample("obs", dist.Normal(theta, sigma), obs=y)


def eight_schools_noncentered(sigma, y=None):
    """The same model non-centered (theta = mu + tau * eta), which NUTS samples without funnels."""
    mu = pyro.sample("mu", dist.Normal(0.0, 5.0))
    tau = pyro.sample("tau", dist.HalfCauchy(5.0))
    with pyro.plate("school", len(sigma)):
        eta = pyro.sample("eta", dist.Normal(0.0, 1.0))
        theta = pyro.deterministic("theta", mu + tau * eta)
        pyro.sample("obs", dist.Normal(theta, sigma), obs=y)


#: the known noise sd and prior sd of the conjugate regression
NOISE_SD, PRIOR_SD = 1.0, 10.0


def linear_regression(X, y=None):
    """Bayesian linear regression with known noise: a conjugate case (exact posterior known)."""
    beta = pyro.sample("beta", dist.Normal(0.0, PRIOR_SD).expand([X.shape[1]]).to_event(1))
    with pyro.plate("data", X.shape[0]):
        pyro.sample("y", dist.Normal(X @ beta, NOISE_SD), obs=y)


def logistic_regression(X, y=None):
    """Logistic regression with an intercept and weakly informative priors."""
    alpha = pyro.sample("alpha", dist.Normal(0.0, 2.5))
    beta = pyro.sample("beta", dist.Normal(0.0, 2.5).expand([X.shape[1]]).to_event(1))
    with pyro.plate("data", X.shape[0]):
        pyro.sample("y", dist.Bernoulli(logits=alpha + X @ beta), obs=y)


def poisson_glm(X, y=None):
    """A Poisson GLM (log link) for counts."""
    alpha = pyro.sample("alpha", dist.Normal(0.0, 2.0))
    beta = pyro.sample("beta", dist.Normal(0.0, 1.0).expand([X.shape[1]]).to_event(1))
    with pyro.plate("data", X.shape[0]):
        pyro.sample("y", dist.Poisson(torch.exp(alpha + X @ beta)), obs=y)


def varying_intercept(group, x, num_groups, y=None):
    """A hierarchical regression: one intercept per group around a shared mean (non-centered)."""
    mu = pyro.sample("mu", dist.Normal(0.0, 5.0))
    tau = pyro.sample("tau", dist.HalfNormal(2.0))
    slope = pyro.sample("slope", dist.Normal(0.0, 5.0))
    sigma = pyro.sample("sigma", dist.HalfNormal(2.0))
    with pyro.plate("group", num_groups):
        z = pyro.sample("z", dist.Normal(0.0, 1.0))
    intercept = pyro.deterministic("intercept", mu + tau * z)
    with pyro.plate("data", len(x)):
        pyro.sample("y", dist.Normal(intercept[group] + slope * x, sigma), obs=y)


# ----------------------------------------------------------------------------------- data
def eight_schools_data() -> dict[str, np.ndarray]:
    """The eight schools' estimated effects and their standard errors (Rubin 1981)."""
    return {
        "sigma": np.array([15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0]),
        "y": np.array([28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0]),
    }


def regression_data(seed: int = 0, n: int = 100) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = np.column_stack([np.ones(n), rng.normal(size=(n, 2))])
    return {"X": X, "y": X @ np.array([1.0, 2.0, -1.0]) + rng.normal(scale=NOISE_SD, size=n)}


def exact_regression_posterior(X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``(D,)`` and covariance ``(D, D)`` of ``beta`` given the data, in closed form."""
    precision = X.T @ X / NOISE_SD**2 + np.eye(X.shape[1]) / PRIOR_SD**2
    covariance = np.linalg.inv(precision)
    return covariance @ X.T @ y / NOISE_SD**2, covariance


def logistic_data(seed: int = 0, n: int = 200) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 2))
    logits = -0.5 + X @ np.array([1.5, -1.0])
    return {"X": X, "y": (rng.uniform(size=n) < 1 / (1 + np.exp(-logits))).astype(float)}


def poisson_data(seed: int = 0, n: int = 200) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 2))
    return {"X": X, "y": rng.poisson(np.exp(0.5 + X @ np.array([0.4, -0.3]))).astype(float)}


def varying_intercept_data(seed: int = 0, groups: int = 8, per_group: int = 12) -> dict:
    rng = np.random.default_rng(seed)
    group = np.repeat(np.arange(groups), per_group)
    x = rng.normal(size=group.size)
    intercepts = rng.normal(1.0, 0.8, size=groups)
    y = intercepts[group] + 0.7 * x + rng.normal(scale=0.5, size=group.size)
    return {"group": group, "x": x, "num_groups": groups, "y": y}


#: name -> (model, data)
GALLERY = {
    "eight_schools_centered": (eight_schools_centered, eight_schools_data),
    "eight_schools_noncentered": (eight_schools_noncentered, eight_schools_data),
    "linear_regression": (linear_regression, regression_data),
    "logistic_regression": (logistic_regression, logistic_data),
    "poisson_glm": (poisson_glm, poisson_data),
    "varying_intercept": (varying_intercept, varying_intercept_data),
}


def main(argv: list[str] | None = None) -> None:
    import bayesvae

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="eight_schools_noncentered", choices=[*GALLERY, "all"])
    parser.add_argument("--steps", type=int, default=3000, help="SVI steps")
    parser.add_argument("--num-samples", type=int, default=1000, help="NUTS draws per chain")
    parser.add_argument("--chains", type=int, default=2, help="NUTS chains")
    parser.add_argument("--out", type=Path, help="write a report per model into this folder")
    args = parser.parse_args(argv)

    names = list(GALLERY) if args.model == "all" else [args.model]
    for name in names:
        model, make_data = GALLERY[name]
        data = make_data()
        pyro.clear_param_store()
        svi = bayesvae.fit(model, **data, guide="mvn", num_steps=args.steps, progress=False)
        nuts = bayesvae.mcmc(
            model,
            **data,
            num_warmup=args.num_samples,
            num_samples=args.num_samples,
            num_chains=args.chains,
        )
        table = bayesvae.diagnostics.compare_posteriors(svi.to_inference_data(), nuts)
        print(f"== {name}: SVI (AutoMultivariateNormal) against NUTS")
        print(table.round(3).to_string(index=False))
        if args.out is not None:
            report = bayesvae.report(svi, mcmc=nuts, out=args.out / name, title=name)
            print(f"report: {report.html}")


if __name__ == "__main__":
    main()
