"""The ``bayesvae`` command line. Bad input exits with code 2 and one line on stderr."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["main", "load_data_spec"]


class UsageError(Exception):
    """Bad command-line input: reported on one line, exit code 2."""


def load_data_spec(spec: str, *, seed: int = 0, val_fraction: float = 0.1) -> tuple[Any, Any]:
    """Resolve ``--data``: ``digits``, ``mnist:DIR``, ``binarized-mnist:PATH`` or a
    ``.npy``/``.npz`` file. Returns ``(train, val)`` as :class:`~bayesvae.data.ImageData`."""
    from bayesvae import data

    if not 0 <= val_fraction < 1:
        raise UsageError(f"--val-fraction {val_fraction}: expected a number in [0, 1)")
    if spec == "digits":
        return _split(data.load_digits(), seed, val_fraction)
    kind, _, location = spec.partition(":")
    if kind == "mnist" and location:
        root = Path(location)
        if not root.is_dir():
            raise UsageError(f"--data {spec}: folder {root} does not exist")
        return data.load_mnist(root, split="train"), data.load_mnist(root, split="test")
    if kind == "binarized-mnist" and location:
        if not Path(location).exists():
            raise UsageError(f"--data {spec}: {location} does not exist")
        return (
            data.load_binarized_mnist(location, split="train"),
            data.load_binarized_mnist(location, split="valid"),
        )
    path = Path(spec)
    if path.suffix in (".npy", ".npz"):
        if not path.exists():
            raise UsageError(f"--data {spec}: file does not exist")
        return _split(data.load_array(path), seed, val_fraction)
    raise UsageError(
        f"--data {spec!r}: expected 'digits', 'mnist:DIR', 'binarized-mnist:PATH', "
        "or a .npy/.npz file"
    )


def _split(dataset: Any, seed: int, val_fraction: float) -> tuple[Any, Any]:
    from dataclasses import replace

    order = np.random.default_rng(seed).permutation(len(dataset))
    n_val = int(round(val_fraction * len(dataset)))
    if n_val == 0 or n_val == len(dataset):
        return dataset, None

    def take(index: np.ndarray) -> Any:
        return replace(
            dataset, x=dataset.x[index], y=None if dataset.y is None else dataset.y[index]
        )

    return take(order[n_val:]), take(order[:n_val])


def _as_images(dataset: Any) -> Any:
    """``(N, D)`` data reshaped to ``(N, C, H, W)`` for the convolutional networks."""
    from dataclasses import replace

    if dataset is None:
        return None
    return replace(dataset, x=dataset.x.reshape(len(dataset), *dataset.image_shape))


class _Stages:
    """A progress bar over the named stages of a long job (in a terminal, unless
    ``--no-progress``): ``with _Stages(args, n) as stage: stage("PSIS"); ...``."""

    def __init__(self, args: argparse.Namespace, total: int, desc: str = "report") -> None:
        self.bar = None
        if _show_progress(args):
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, desc=desc, unit="stage", leave=False)
        self.started = False

    def __call__(self, name: str) -> None:
        if self.bar is not None:
            if self.started:
                self.bar.update(1)
            self.bar.set_postfix_str(name)
        self.started = True

    def __enter__(self) -> _Stages:
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.bar is not None:
            self.bar.update(self.bar.total - self.bar.n)
            self.bar.close()


#: ``bayesvae vae --model NAME`` -> model class name in :mod:`bayesvae.models`
VAE_MODELS = {
    "vae": "VAE",
    "cvae": "ConditionalVAE",
    "hvae": "HierarchicalVAE",
    "gumbel": "GumbelSoftmaxVAE",
    "mixture": "MixturePriorVAE",
    "ssvae": "SemiSupervisedVAE",
    "avb": "AdversarialVAE",
}
#: models trained with labels: the conditional VAE (every row) and M2 (--labelled rows)
LABELLED_MODELS = ("cvae", "ssvae")


def _build_vae(args: argparse.Namespace, input_shape: tuple[int, ...], num_classes: int) -> Any:
    from bayesvae import models

    common: dict[str, Any] = dict(
        hidden_dims=tuple(args.hidden),
        encoder=args.encoder,
        likelihood=args.likelihood,
        beta=args.beta,
        seed=args.seed,
    )
    if args.model == "gumbel":
        family: dict[str, Any] = dict(
            num_variables=args.num_variables,
            categories=args.categories,
            temperature=args.temperature,
            min_temperature=(
                min(0.5, args.temperature) if args.min_temperature is None else args.min_temperature
            ),
            anneal_rate=args.anneal_rate,
        )
    else:
        family = dict(latent_dim=args.latent_dim)
    if args.model in ("vae", "cvae", "mixture"):
        family.update(flows=args.flows, flow_type=args.flow_type)
    elif args.flows:
        raise UsageError(f"--flows is for --model vae, cvae or mixture, not {args.model}")
    if args.model in LABELLED_MODELS:
        family["num_classes"] = num_classes
    if args.model == "ssvae":
        family["classifier_weight"] = args.classifier_weight
    if args.model == "avb":
        family["noise_dim"] = args.noise_dim
    elif args.noise_dim is not None:
        raise UsageError("--noise-dim is for --model avb")
    if args.model == "hvae":
        family["top_latent_dim"] = args.top_latent_dim
    if args.model == "mixture":
        family["components"] = args.components
    return getattr(models, VAE_MODELS[args.model])(input_shape, **common, **family)


def _run_vae(args: argparse.Namespace) -> int:

    import bayesvae
    from bayesvae.vae_run import classifier_summary, write_vae_run

    if args.conditional:
        if args.model not in ("vae", "cvae"):
            raise UsageError(f"--conditional cannot be combined with --model {args.model}")
        args.model = "cvae"
    if args.labelled is not None and args.model != "ssvae":
        raise UsageError("--labelled is for --model ssvae")
    train, val = load_data_spec(args.data, seed=args.seed, val_fraction=args.val_fraction)
    conditional = args.model == "cvae"
    labelled = args.model in LABELLED_MODELS
    if labelled and (train.y is None or (val is not None and val.y is None)):
        raise UsageError(
            f"--model {args.model} needs labelled data; --data {args.data} has no labels"
        )
    input_shape: Any = train.image_shape if args.encoder == "conv" else train.x.shape[1:]
    if args.encoder == "conv":
        train, val = _as_images(train), _as_images(val)
    num_classes = int(max(train.y.max(), -1 if val is None else val.y.max())) + 1 if labelled else 0
    model = _build_vae(args, tuple(input_shape), num_classes)
    if args.model == "ssvae":
        from bayesvae.data import keep_labels

        num_labelled = len(train.y) if args.labelled is None else args.labelled
        partial = keep_labels(train.y, num_labelled, seed=args.seed)

    def fit_data(dataset: Any) -> Any:
        if dataset is None:
            return None
        if args.model == "ssvae":  # training keeps --labelled labels; validation hides all
            hidden = np.full(len(dataset.x), -1)
            return dataset.x, partial if dataset is train else hidden
        return (dataset.x, dataset.y) if conditional else dataset

    out = Path(args.out)
    checkpoints = _checkpoints(args)
    result = bayesvae.fit(
        model,
        fit_data(train),
        val=fit_data(val),
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        elbo=args.elbo,
        num_particles=args.particles,
        alpha=args.alpha,
        kl_warmup=args.kl_warmup,
        lr_schedule=args.lr_schedule,
        clip_norm=args.clip_norm,
        early_stopping=args.early_stopping,
        device=args.device,
        seed=args.seed,
        progress=not args.no_progress,
        # the NumPyro loop keeps no per-epoch checkpoints; its run folder is written at the end
        checkpoint_dir=checkpoints,
        checkpoint_every=args.checkpoint_every,
        resume=args.resume,
        backend=args.backend,
    )
    classifier = classifier_summary(result.model, partial, val) if args.model == "ssvae" else None
    stages = _Stages(args, 4) if args.report else contextlib.nullcontext(lambda name: None)
    with stages as stage:  # the run is assembled beside --out, swapped in with its checkpoints
        write_vae_run(
            result,
            out,
            train,
            val,
            report=args.report,
            seed=args.seed,
            classifier=classifier,
            stage=stage,
        )
    last = result.history.iloc[-1].to_dict()
    summary = {
        "out": str(out),
        "model": result.model.family,
        "epochs": int(last["epoch"]),
        "train_elbo": last["train_elbo"],
        "val_elbo": last.get("val_elbo"),
        "device": str(result.device),
    }
    summary.update(classifier or {})
    print(
        json.dumps(summary)
        if args.json
        else "\n".join(f"{key}: {value}" for key, value in summary.items())
    )
    return 0


def _checkpoints(args: argparse.Namespace) -> Path | None:
    """``--out/checkpoints`` for a Pyro-backend run with ``--out`` (``None`` otherwise), after
    checking ``--resume`` has a checkpoint to continue from."""
    from bayesvae.runs import KEPT_ENTRIES

    if args.resume and args.backend == "numpyro":
        raise UsageError("--resume is for --backend pyro (the NumPyro loop keeps no checkpoints)")
    if args.resume and not args.out:
        raise UsageError("--resume needs --out DIR (the run whose checkpoints/ it continues)")
    if not args.out or args.backend == "numpyro":
        return None
    folder = Path(args.out) / KEPT_ENTRIES[0]
    if args.resume and not (folder / "last.pt").is_file():
        raise UsageError(f"--resume: no checkpoint to resume from ({folder / 'last.pt'})")
    return folder


def _parse_arm(text: str) -> tuple[str, int, int]:
    name, sep, counts = text.rpartition("=")  # a name may itself contain "="
    successes, slash, trials = counts.partition("/")
    if not (sep and slash and name):
        raise UsageError(f"--arm {text!r}: expected NAME=SUCCESSES/TRIALS, e.g. A=200/1000")
    try:
        return name, int(successes), int(trials)
    except ValueError:
        raise UsageError(f"--arm {text!r}: successes and trials must be whole numbers") from None


def _parse_prior(text: str | None) -> tuple[float, ...] | None:
    if text is None:
        return None
    try:
        return tuple(float(p) for p in text.split(","))
    except ValueError:
        raise UsageError(
            f"--prior {text!r}: expected comma-separated numbers, e.g. 1,1 for a Beta prior"
        ) from None


def _number_or_auto(cast: type, what: str) -> Any:
    """An argparse ``type`` accepting ``auto`` or a value of ``cast`` (``what`` names it)."""

    def parse(text: str) -> Any:
        if text == "auto":
            return text
        try:
            return cast(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what} or 'auto', got {text!r}") from None

    return parse


def _parse_allocation(text: str | None) -> list[float] | dict[str, float] | None:
    """``50,50`` (arm order) or ``A=50,B=50``."""
    if text is None:
        return None
    parts = [p.strip() for p in text.split(",")]
    try:
        if all("=" in p for p in parts):
            return {name: float(value) for name, value in (p.split("=", 1) for p in parts)}
        return [float(p) for p in parts]
    except ValueError:
        raise UsageError(
            f"--allocation {text!r}: expected weights in arm order (50,50) or NAME=WEIGHT pairs"
        ) from None


def prepare_out(out: Path, *, overwrite: bool, resume: bool = False) -> None:
    """Check ``--out`` before any work: a folder (created if missing) that can be written, whose
    parent can be written too (the run is assembled beside it and swapped in whole, so the old
    run stays until the new one is complete), and not one holding another run unless
    ``overwrite`` (or ``resume``, which continues it) nor files that are not a run."""
    import tempfile

    from bayesvae.runs import KEPT_ENTRIES, is_run_folder

    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out}: exists and is not a folder")
    if is_run_folder(out) and not (overwrite or resume):
        raise UsageError(
            f"--out {out} already holds a run; pass --overwrite to replace it, or choose "
            "another folder"
        )
    if out.is_dir() and not is_run_folder(out):
        foreign = sorted(p.name for p in out.iterdir() if p.name not in KEPT_ENTRIES)
        if foreign:
            raise UsageError(
                f"--out {out} holds files that are not a bayesvae run ({', '.join(foreign[:3])}); "
                "a run folder replaces what is there, so choose a new or empty folder"
            )
    try:
        out.mkdir(parents=True, exist_ok=True)
        for folder in (out, out.resolve().parent):
            with tempfile.TemporaryFile(dir=folder):
                pass
    except OSError as err:
        raise UsageError(f"--out {out}: cannot be written ({err.strerror or err})") from None


def _show_progress(args: argparse.Namespace) -> bool:
    """A progress bar for long work: in a terminal, unless ``--no-progress``."""
    return not args.no_progress and sys.stderr.isatty()


def _run_abtest(args: argparse.Namespace) -> int:
    from bayesvae.abtest import abtest, abtest_from_rows, abtest_metrics

    if args.report and not args.out:
        raise UsageError("--report needs --out DIR (the report is written there)")
    options = dict(
        prior=_parse_prior(args.prior),
        hierarchical=args.hierarchical,
        method=args.method,
        control=args.control,
        rope=args.rope,
        loss_threshold=args.loss_threshold,
        hdi_prob=args.hdi_prob,
        backend=args.backend,
        seed=args.seed,
        progress=_show_progress(args),
    )
    row_options = dict(
        unit=args.unit,
        dedupe=args.dedupe,
        allocation=_parse_allocation(args.allocation),
        check_column=args.check_column,
    )
    metric_options = dict(count_likelihood=args.count_likelihood, winsorize=args.winsorize)
    outcomes, metrics = args.outcome, args.metric or ["conversion"]
    if args.data is not None:
        if args.arm:
            raise UsageError("give either a CSV file or --arm counts, not both")
        if not (args.group and outcomes):
            raise UsageError("a CSV file needs --group and --outcome column names")
        if len(metrics) == 1:
            metrics = metrics * len(outcomes)
        if len(metrics) != len(outcomes):
            raise UsageError(
                f"{len(outcomes)} --outcome columns need one --metric or one each, got "
                f"{len(metrics)}"
            )
        if len(set(outcomes)) != len(outcomes):
            raise UsageError(f"--outcome columns must differ, got {outcomes}")
        if len(outcomes) == 1:
            result: Any = abtest_from_rows(
                args.data,
                group=args.group,
                outcome=outcomes[0],
                metric=metrics[0],
                **row_options,
                **options,
                **metric_options,
            )
        else:
            result = abtest_metrics(
                args.data,
                group=args.group,
                metrics=dict(zip(outcomes, metrics, strict=True)),
                **row_options,
                **options,
                **metric_options,
            )
    else:
        if not args.arm:
            raise UsageError("give --arm NAME=SUCCESSES/TRIALS (at least two) or a CSV file")
        refused = [
            flag
            for flag, value in (
                ("--outcome", outcomes),
                ("--metric", args.metric and args.metric != ["conversion"]),
                ("--unit", args.unit),
                ("--allocation", args.allocation),
                ("--check-column", args.check_column),
                ("--winsorize", args.winsorize),
            )
            if value
        ]
        if refused:
            raise UsageError(f"{', '.join(refused)} need a CSV file of per-unit rows")
        arms = [_parse_arm(text) for text in args.arm]
        result = abtest(
            arms=[a[0] for a in arms],
            successes=[a[1] for a in arms],
            trials=[a[2] for a in arms],
            **options,
        )
    _save_and_print(result, args)
    return 0


def _save_and_print(run: Any, args: argparse.Namespace) -> None:
    """Write the run folder (and report) when ``--out`` is given; print JSON or the table."""
    if args.out:
        from bayesvae.runs import RunWriter

        with RunWriter(args.out, overwrite=True) as writer, _Stages(args, 2, "save") as stage:
            stage("run folder")
            run.save(writer)
            if args.report:
                from bayesvae.report import build

                stage("report")
                build(writer.reader())
    print(json.dumps(run.to_dict()) if args.json else run.table())


def _run_anomaly(args: argparse.Namespace) -> int:
    from bayesvae.anomaly import detect_anomalies

    if args.report and not args.out:
        raise UsageError("--report needs --out DIR (the report is written there)")
    run = detect_anomalies(
        args.data,
        columns=args.columns,
        label_column=args.label_column,
        n_components=args.components,
        max_components=args.max_components,
        covariance=args.covariance,
        anomaly_scale=args.anomaly_scale,
        contamination=args.contamination,
        method=args.method,
        backend=args.backend,
        epochs=args.epochs,
        num_samples=args.num_samples,
        num_warmup=args.num_warmup,
        num_chains=args.chains,
        threshold=args.threshold,
        seed=args.seed,
        progress=_show_progress(args),
    )
    _save_and_print(run, args)
    return 0


def _run_vae_anomaly(args: argparse.Namespace) -> int:
    import pandas as pd

    from bayesvae.anomaly import VAEAnomalyDetector, ranking_metrics
    from bayesvae.data import read_features
    from bayesvae.runs import RunWriter

    if args.report and not args.out:
        raise UsageError("--report needs --out DIR (the report is written there)")
    detector = VAEAnomalyDetector(
        latent_dim=args.latent_dim,
        hidden_dims=tuple(args.hidden),
        likelihood=args.likelihood,
        scoring=args.score,
        num_samples=args.num_samples,
        contamination=args.contamination,
        epochs=args.epochs,
        seed=args.seed,
        progress=_show_progress(args),
    )
    X, labels, names = read_features(
        args.data, columns=args.columns, label_column=args.label_column
    )
    detector.fit(X)
    score = detector.score_samples(X)
    flags = (score < detector.offset_).astype(int)
    summary: dict[str, Any] = {
        "detector": "VAEAnomalyDetector",
        "score": args.score,
        "rows": int(len(X)),
        "features": names,
        "flagged": int(flags.sum()),
        "threshold_score": detector.offset_,
    }
    if labels is not None:
        summary.update(ranking_metrics(labels, -score))
    if args.out:
        table = pd.DataFrame(
            {"row": np.arange(len(X)), "score": score, "anomaly_score": -score, "flag": flags}
        )
        from bayesvae.report import plots

        with RunWriter(args.out, overwrite=True) as run, _Stages(args, 2, "save") as stage:
            stage("run folder")
            detector.save(run)
            run.write_csv("scores.csv", table)
            run.write_json("result.json", summary)
            plots.vae_anomaly_scores(
                -score, run.file("scores.png"), threshold=-detector.offset_, labels=labels
            )
            plots.loss_curves(detector.history_, run.file("loss_curves.png"))
            if args.report:
                from bayesvae.report import build

                stage("report")
                build(run.reader())
    if args.json:
        print(json.dumps(summary))
    else:
        print("\n".join(f"{key}: {value}" for key, value in summary.items()))
    return 0


def _run_topics(args: argparse.Namespace) -> int:
    from bayesvae.topics import fit_topics

    if args.report and not args.out:
        raise UsageError("--report needs --out DIR (the report is written there)")
    run = fit_topics(
        args.corpus,
        args.topics,
        backend=args.backend,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        column=args.column,
        vocab_size=args.vocab_size,
        min_df=args.min_df,
        max_df=args.max_df,
        seed=args.seed,
        progress=not args.no_progress,
        checkpoint_dir=_checkpoints(args),
        checkpoint_every=args.checkpoint_every,
        resume=args.resume,
    )
    _save_and_print(run, args)
    return 0


def _run_text_vae(args: argparse.Namespace) -> int:
    from bayesvae.text_vae import fit_text_vae

    if args.report and not args.out:
        raise UsageError("--report needs --out DIR (the report is written there)")
    run = fit_text_vae(
        args.corpus,
        column=args.column,
        min_tokens=args.min_tokens,
        max_tokens=args.max_tokens,
        vocab_size=args.vocab_size,
        val_fraction=args.val_fraction,
        latent_dim=args.latent_dim,
        embedding_dim=args.embedding_dim,
        hidden_dim=args.hidden,
        rnn=args.rnn,
        word_dropout=args.word_dropout,
        free_bits=args.free_bits,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        kl_warmup=args.kl_warmup,
        num_samples=args.num_samples,
        seed=args.seed,
        progress=_show_progress(args),
        device=args.device,
    )
    _save_and_print(run, args)
    return 0


def _load_program(spec: str) -> Any:
    """``MODEL.py:function`` -> the function, imported from the file."""
    import importlib.util

    path_text, sep, name = spec.rpartition(":")
    if not sep or not name or not path_text.endswith(".py"):
        raise UsageError(f"model {spec!r}: expected FILE.py:FUNCTION, e.g. model.py:regression")
    path = Path(path_text)
    if not path.is_file():
        raise UsageError(f"model {spec!r}: {path} is not a file")
    module_spec = importlib.util.spec_from_file_location(f"_bayesvae_user_{path.stem}", path)
    if module_spec is None or module_spec.loader is None:
        raise UsageError(f"model {spec!r}: {path} cannot be imported")
    module = importlib.util.module_from_spec(module_spec)
    try:
        module_spec.loader.exec_module(module)
    except Exception as err:  # noqa: BLE001  (the user's file: any failure is bad input)
        first = str(err).splitlines()[0] if str(err) else ""
        raise UsageError(
            f"model {spec!r}: importing {path} failed: {type(err).__name__}: {first}"
        ) from None
    function = vars(module).get(name)
    if not callable(function):
        found = sorted(k for k, v in vars(module).items() if callable(v) and not k.startswith("_"))
        raise UsageError(f"model {spec!r}: {path} defines no function {name!r} (it has {found})")
    return function


def _read_program_data(path: Path) -> dict[str, Any]:
    """Columns of a CSV, arrays of an ``.npz`` or the entries of a JSON object, by name."""
    if not path.is_file():
        raise UsageError(f"--data {path}: not a file")
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            import pandas as pd

            frame = pd.read_csv(path)
            return {str(c): frame[c].to_numpy() for c in frame.columns}
        if suffix == ".npz":
            from bayesvae.data.validation import load_numpy

            with load_numpy(path) as archive:
                return {k: archive[k] for k in archive.files}
        if suffix == ".json":
            raw = json.loads(path.read_text())
            if not isinstance(raw, dict):
                raise UsageError(f"--data {path}: expected a JSON object of name -> values")
            return {k: np.asarray(v) if isinstance(v, list) else v for k, v in raw.items()}
    except UsageError:
        raise
    except Exception as err:  # noqa: BLE001  (a malformed file is bad input)
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise UsageError(f"--data {path}: cannot be read: {first}") from None
    raise UsageError(f"--data {path}: expected a .csv, .npz or .json file")


def _bind_program_arguments(function: Any, data: dict[str, Any], binds: list[str]) -> dict:
    """The model's arguments by name: each one from the data entry of its name (or the one
    ``--bind ARG=NAME`` gives); arguments with defaults may be left out."""
    import inspect

    renames = {}
    for bind in binds:
        argument, sep, column = bind.partition("=")
        if not sep or not argument or not column:
            raise UsageError(f"--bind {bind!r}: expected ARGUMENT=COLUMN")
        if column not in data:
            raise UsageError(
                f"--bind {bind!r}: the data have no {column!r} (they have {sorted(data)})"
            )
        renames[argument] = column
    parameters = inspect.signature(function).parameters
    unknown = sorted(set(renames) - set(parameters))
    if unknown:
        raise UsageError(
            f"--bind: the model has no argument {unknown[0]!r} (it has {list(parameters)})"
        )
    bound = {}
    for name, parameter in parameters.items():
        key = renames.get(name, name)
        if key in data:
            bound[name] = data[key]
        elif parameter.default is inspect.Parameter.empty and parameter.kind not in (
            inspect.Parameter.VAR_POSITIONAL,
            inspect.Parameter.VAR_KEYWORD,
        ):
            raise UsageError(
                f"argument {name!r} of the model has no data: the file has {sorted(data)}; "
                f"add it or pass --bind {name}=COLUMN"
            )
    return bound


def _run_fit(args: argparse.Namespace) -> int:
    import warnings

    import bayesvae

    function = _load_program(args.model)
    bound = _bind_program_arguments(function, _read_program_data(Path(args.data)), args.bind)
    if args.report and args.out is None:
        raise UsageError("--report needs --out DIR (the run folder the report goes into)")
    out = Path(args.out) if args.out is not None else None
    svi = nuts = None
    if args.method in ("svi", "both"):
        svi = bayesvae.fit(
            function,
            guide=args.guide,
            num_steps=args.steps,
            lr=args.lr,
            elbo=args.elbo,
            num_particles=args.particles,
            alpha=args.alpha,
            seed=args.seed,
            progress=not args.no_progress,
            model_kwargs=bound,
        )
    if args.method in ("mcmc", "both"):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", bayesvae.infer.mcmc.ConvergenceWarning)
            nuts = bayesvae.mcmc(
                function,
                num_warmup=args.num_warmup,
                num_samples=args.num_samples,
                num_chains=args.chains,
                jit_compile=args.jit,
                seed=args.seed,
                progress=not args.no_progress,
                model_kwargs=bound,
            )
        for warning in caught:
            print(f"warning: {warning.message}", file=sys.stderr)
    summary: dict[str, Any] = {"model": args.model, "method": args.method}
    import arviz as az

    main_idata = nuts.inference_data if nuts is not None else svi.to_inference_data()  # type: ignore[union-attr]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = az.summary(main_idata, kind="stats", hdi_prob=0.95)
    summary["posterior"] = {
        str(name): {k: float(v) for k, v in row.items()} for name, row in table.iterrows()
    }
    if svi is not None:
        summary["final_elbo_per_point"] = float(svi.history["train_elbo"].iloc[-1])
    if nuts is not None:
        summary["convergence_problems"] = nuts.problems
    if svi is not None and nuts is not None:
        from bayesvae.diagnostics import compare_posteriors

        comparison = compare_posteriors(svi.to_inference_data(), nuts)
        summary["guide_agrees_with_nuts"] = bool(comparison["agrees"].all())
    if out is not None:
        with _Stages(args, 1) as stage:
            stage("guide draws, PSIS, LOO, figures")
            paths = bayesvae.report(svi, mcmc=nuts, out=out)
        summary["report"] = str(paths.html)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"{args.model} ({args.method}):")
        print(table.round(4).to_string())
        if "guide_agrees_with_nuts" in summary:
            verdict = "agrees" if summary["guide_agrees_with_nuts"] else "does NOT agree"
            print(f"the {args.guide} guide {verdict} with NUTS (see the report's comparison)")
        if out is not None:
            print(f"run folder and report: {out}")
    return 0


def _run_report(args: argparse.Namespace) -> int:
    from bayesvae.report import build

    run = Path(args.run_dir)
    if not run.is_dir():
        raise UsageError(f"run folder {run} does not exist")
    paths = build(run, title=args.title)
    print(f"{paths.html}\n{paths.markdown}")
    return 0


def _add_checkpoint_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out from its last checkpoint up to --epochs (same options)",
    )
    parser.add_argument(
        "--checkpoint-every",
        type=int,
        default=1,
        metavar="N",
        help="write --out/checkpoints/last.pt every N epochs",
    )


#: help for an option whose choices load lazily (a metavar keeps argparse from reading them early)
_CHOICES_HELP = "one of %(choices)s (default: %(default)s)"


class _LazyChoices:
    """An argparse ``choices`` container read from ``module.attribute`` (sorted) on first use,
    so that building the parser imports no heavy module."""

    def __init__(self, module: str, attribute: str) -> None:
        self.module, self.attribute = module, attribute
        self._values: tuple[str, ...] | None = None

    def _load(self) -> tuple[str, ...]:
        if self._values is None:
            import importlib

            self._values = tuple(
                sorted(getattr(importlib.import_module(self.module), self.attribute))
            )
        return self._values

    def __contains__(self, value: object) -> bool:
        return value in self._load()

    def __iter__(self) -> Any:
        return iter(self._load())

    def __len__(self) -> int:
        return len(self._load())


# choices defined beside torch code, read only when a subcommand checks or shows them
_OBJECTIVES = _LazyChoices("bayesvae.infer.objectives", "OBJECTIVES")
_AUTOGUIDES = _LazyChoices("bayesvae.models.program", "AUTOGUIDES")
_ENCODERS = _LazyChoices("bayesvae.models.vae", "ENCODERS")
_FLOW_TYPES = _LazyChoices("bayesvae.models.vae", "FLOW_TYPES")
_LIKELIHOODS = _LazyChoices("bayesvae.models.vae", "LIKELIHOODS")


def _build_parser() -> argparse.ArgumentParser:
    from bayesvae._version import __version__

    # -v/-q/--debug work before or after the subcommand; SUPPRESS keeps a subcommand from
    # resetting what was given before it
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="log each epoch"
    )
    common.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        default=argparse.SUPPRESS,
        help="log errors only (no warnings)",
    )
    common.add_argument(
        "--debug",
        action="store_true",
        default=argparse.SUPPRESS,
        help="show the full traceback of an error (for bug reports; also BAYESVAE_DEBUG=1)",
    )
    parser = argparse.ArgumentParser(
        prog="bayesvae", description=__doc__, parents=[common], formatter_class=_HelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"bayesvae {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    def add_parser(name: str, **options: Any) -> argparse.ArgumentParser:
        """A subcommand with the common options and defaults in its ``--help``."""
        return commands.add_parser(
            name, parents=[common], formatter_class=_HelpFormatter, **options
        )

    _vae_arguments(add_parser("vae", help="train a variational autoencoder and write a run folder"))
    _ab_arguments(add_parser("abtest", help="Bayesian A/B/n test of conversion counts"))
    _anomaly_arguments(
        add_parser("anomaly", help="Bayesian anomaly mixture: P(anomaly) for every row of a table")
    )
    _vae_anomaly_arguments(
        add_parser(
            "vae-anomaly",
            help="VAE anomaly scores (negative ELBO or IWAE) for every row of a table",
        )
    )
    _topics_arguments(add_parser("topics", help="fit a ProdLDA topic model to a corpus"))
    _fit_arguments(
        add_parser(
            "fit",
            help="fit your own Pyro program (MODEL.py:FUNCTION) by SVI and/or NUTS",
            description="Fit a Pyro program from a file; its arguments are bound by name to the "
            "columns of a CSV, the arrays of an .npz or the entries of a JSON object.",
        )
    )
    _text_vae_arguments(
        add_parser("text-vae", help="fit a sentence VAE (Bowman et al. 2016) to a corpus")
    )
    _report_arguments(add_parser("report", help="write report.html and report.md for a run"))
    for sub_parser in [parser, *commands.choices.values()]:
        _show_defaults(sub_parser)
    return parser


def _vae_arguments(vae: argparse.ArgumentParser) -> None:
    """Declare ``bayesvae vae``'s arguments on its subparser."""
    vae.add_argument(
        "--data",
        default="digits",
        help="digits | mnist:DIR | binarized-mnist:PATH | FILE.npy | FILE.npz",
    )
    vae.add_argument("--out", required=True, help="run folder to write")
    vae.add_argument("--overwrite", action="store_true", help="replace a run already in --out")
    _add_checkpoint_options(vae)
    vae.add_argument("--epochs", type=int, default=20)
    vae.add_argument("--latent-dim", type=int, default=2)
    vae.add_argument("--hidden", type=int, nargs="+", default=[256], help="hidden layer widths")
    vae.add_argument(
        "--encoder", default="mlp", choices=_ENCODERS, metavar="NAME", help=_CHOICES_HELP
    )
    vae.add_argument(
        "--likelihood",
        default="bernoulli",
        choices=_LIKELIHOODS,
        metavar="NAME",
        help=_CHOICES_HELP,
    )
    vae.add_argument("--beta", type=float, default=1.0, help="KL weight (beta-VAE)")
    vae.add_argument("--kl-warmup", type=int, default=0, help="KL warm-up epochs")
    vae.add_argument(
        "--model",
        default="vae",
        choices=tuple(VAE_MODELS),
        help="vae | cvae (conditional, needs labels) | hvae (two stochastic layers) | "
        "gumbel (discrete latents, Gumbel-softmax) | mixture (Gaussian-mixture prior) | "
        "ssvae (semi-supervised M2, labels for --labelled rows) | avb (implicit guide, "
        "adversarial KL)",
    )
    vae.add_argument(
        "--noise-dim", type=int, help="--model avb: size of the guide's noise (default: latent)"
    )
    vae.add_argument(
        "--labelled",
        type=int,
        metavar="N",
        help="--model ssvae: training labels kept, spread over the classes (default: all)",
    )
    vae.add_argument(
        "--classifier-weight",
        type=float,
        default=10.0,
        help="--model ssvae: weight of log q(y|x) on each labelled row",
    )
    vae.add_argument("--conditional", action="store_true", help="same as --model cvae")
    vae.add_argument(
        "--flows", type=int, default=0, help="conditional flows after the Gaussian guide"
    )
    vae.add_argument(
        "--flow-type", default="iaf", choices=_FLOW_TYPES, metavar="NAME", help=_CHOICES_HELP
    )
    vae.add_argument(
        "--top-latent-dim", type=int, default=10, help="--model hvae: size of the top layer"
    )
    vae.add_argument(
        "--num-variables", type=int, default=20, help="--model gumbel: categorical variables"
    )
    vae.add_argument("--categories", type=int, default=10, help="--model gumbel: classes each")
    vae.add_argument("--components", type=int, default=10, help="--model mixture: prior components")
    vae.add_argument(
        "--temperature", type=float, default=1.0, help="--model gumbel: initial temperature"
    )
    vae.add_argument(
        "--min-temperature",
        type=float,
        help="--model gumbel: temperature floor (default: 0.5, or --temperature if lower)",
    )
    vae.add_argument(
        "--anneal-rate", type=float, default=1e-4, help="--model gumbel: decay per step"
    )
    vae.add_argument(
        "--elbo",
        choices=_OBJECTIVES,
        metavar="NAME",
        help="objective, one of %(choices)s (default: the model's own: enum for --model "
        "mixture, else trace)",
    )
    vae.add_argument(
        "--particles",
        type=int,
        default=1,
        help="samples per step; the bound's K with --elbo iwae, renyi or cubo",
    )
    vae.add_argument("--alpha", type=float, help="order of --elbo renyi (default 0.5)")
    vae.add_argument("--batch-size", type=int, default=128)
    vae.add_argument("--lr", type=float, default=1e-3)
    vae.add_argument(
        "--lr-schedule", default="constant", choices=("constant", "cosine", "exponential")
    )
    vae.add_argument("--clip-norm", type=float, help="clip the gradient norm at this value")
    vae.add_argument(
        "--early-stopping",
        type=int,
        metavar="N",
        help="stop when the validation ELBO has not improved for N epochs",
    )
    vae.add_argument(
        "--val-fraction",
        type=float,
        default=0.1,
        help="held-out share for files and digits (MNIST uses its test split)",
    )
    vae.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    vae.add_argument(
        "--backend",
        default="pyro",
        choices=("pyro", "numpyro"),
        help="numpyro: the jitted NumPyro twin (trace/meanfield ELBO, no KL warm-up)",
    )
    vae.add_argument("--seed", type=int, default=0)
    vae.add_argument("--no-progress", action="store_true")
    vae.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    vae.add_argument(
        "--report",
        action="store_true",
        help="also compute diagnostics and write report.html and report.md",
    )
    vae.set_defaults(run=_run_vae)


def _ab_arguments(ab: argparse.ArgumentParser) -> None:
    """Declare ``bayesvae abtest``'s arguments on its subparser."""
    ab.add_argument("data", nargs="?", help="CSV of per-user rows (with --group, --outcome)")
    ab.add_argument(
        "--arm",
        action="append",
        default=[],
        help="NAME=SUCCESSES/TRIALS, once per arm, e.g. --arm A=200/1000",
    )
    ab.add_argument("--group", help="CSV column naming each row's arm")
    ab.add_argument(
        "--outcome",
        action="append",
        default=[],
        help="CSV column of the metric; repeat for several metrics (the first is primary)",
    )
    ab.add_argument(
        "--metric",
        action="append",
        choices=("conversion", "count", "continuous", "revenue"),
        help="metric of each --outcome (one for all, or one each; default conversion)",
    )
    ab.add_argument(
        "--count-likelihood",
        default="poisson",
        choices=("poisson", "negative-binomial"),
        help="model of a count metric (negative-binomial for overdispersed counts)",
    )
    ab.add_argument(
        "--winsorize",
        type=float,
        help="cap values at this pooled quantile, e.g. 0.999 (count, continuous, revenue)",
    )
    ab.add_argument("--unit", help="CSV column identifying a unit (user): duplicates are checked")
    ab.add_argument(
        "--dedupe",
        choices=("first", "drop"),
        help="with --unit: keep each unit's first row, or drop units seen in several arms",
    )
    ab.add_argument(
        "--allocation",
        help="intended split for the sample-ratio check, e.g. 50,50 or A=1,B=2 (default equal)",
    )
    ab.add_argument(
        "--check-column",
        help="a column that should agree with the arm (e.g. landing_page): mismatches reported",
    )
    ab.add_argument(
        "--prior",
        help="prior numbers, comma-separated: Beta 'a,b' for conversion, Gamma 'a,b' for counts, "
        "NIG 'm0,k0,a0,b0' for continuous (default: the metric's, see docs/abtest.md)",
    )
    ab.add_argument(
        "--hierarchical",
        action="store_true",
        help="shared prior with hyperpriors (partial pooling; conversion)",
    )
    ab.add_argument("--method", default="exact", choices=("exact", "mcmc", "svi"))
    ab.add_argument(
        "--backend",
        default="numpyro",
        choices=("numpyro", "pyro"),
        help="NUTS backend for --method mcmc",
    )
    ab.add_argument("--control", help="reference arm for lift (default: the first)")
    ab.add_argument(
        "--rope",
        type=float,
        help="half-width of the region of practical equivalence on the difference in rates",
    )
    ab.add_argument(
        "--loss-threshold",
        type=float,
        help="choose an arm once its expected loss is at most this (default: 0.001 for "
        "conversion, 1%% of the control's mean otherwise)",
    )
    ab.add_argument("--hdi-prob", type=float, default=0.95)
    ab.add_argument("--seed", type=int, default=0)
    ab.add_argument("--no-progress", action="store_true", help="no progress bar")
    ab.add_argument("--json", action="store_true", help="print one JSON object")
    ab.add_argument("--out", help="folder for result.json, summary.txt, plots, posterior.nc")
    ab.add_argument("--overwrite", action="store_true", help="replace a run already in --out")
    ab.add_argument(
        "--report", action="store_true", help="also write report.html and report.md into --out"
    )
    ab.set_defaults(run=_run_abtest)


def _anomaly_arguments(anomaly: argparse.ArgumentParser) -> None:
    """Declare ``bayesvae anomaly``'s arguments on its subparser."""
    anomaly.add_argument("data", help="a .csv, .npy or .npz (array X, optional labels) file")
    anomaly.add_argument(
        "--columns", nargs="+", help="feature columns (names; indices for .npy/.npz)"
    )
    anomaly.add_argument(
        "--label-column",
        help="0/1 label column (1 = anomaly), used only to report AUCROC/AUCPR; a .npz key",
    )
    anomaly.add_argument(
        "--components",
        type=_number_or_auto(int, "a whole number"),
        default=1,
        help="normal components K, or 'auto' (K = 1..--max-components by held-out density)",
    )
    anomaly.add_argument(
        "--max-components", type=int, default=5, help="largest K tried by --components auto"
    )
    anomaly.add_argument(
        "--covariance",
        default="auto",
        choices=("auto", "diag", "full"),
        help="component covariance; auto: full up to 15 features, diagonal above",
    )
    anomaly.add_argument(
        "--anomaly-scale",
        type=_number_or_auto(float, "a number"),
        default="auto",
        help="anomaly component's standard deviation (in standard deviations); auto: half "
        "each feature's range, at least 4",
    )
    anomaly.add_argument(
        "--contamination", type=float, default=0.05, help="expected anomaly rate in (0, 0.5)"
    )
    anomaly.add_argument("--method", default="svi", choices=("svi", "mcmc"))
    anomaly.add_argument(
        "--backend",
        default="auto",
        choices=("auto", "pyro", "numpyro"),
        help="SVI loop: numpyro trains the jitted twin (faster on large tables); auto: numpyro "
        "above 3000 steps",
    )
    anomaly.add_argument("--epochs", type=int, default=300, help="SVI epochs")
    anomaly.add_argument("--num-samples", type=int, default=500, help="NUTS draws per chain")
    anomaly.add_argument("--num-warmup", type=int, default=300, help="NUTS warm-up per chain")
    anomaly.add_argument("--chains", type=int, default=4, help="NUTS chains")
    anomaly.add_argument(
        "--threshold", type=float, default=0.5, help="flag rows with P(anomaly) above this"
    )
    anomaly.add_argument("--seed", type=int, default=0)
    anomaly.add_argument("--no-progress", action="store_true", help="no progress bar")
    anomaly.add_argument("--json", action="store_true", help="print one JSON object")
    anomaly.add_argument(
        "--out", help="run folder: model, scores.csv, result.json, plots (posterior.nc for MCMC)"
    )
    anomaly.add_argument("--overwrite", action="store_true", help="replace a run already in --out")
    anomaly.add_argument(
        "--report", action="store_true", help="also write report.html and report.md into --out"
    )
    anomaly.set_defaults(run=_run_anomaly)


def _vae_anomaly_arguments(vae_anomaly: argparse.ArgumentParser) -> None:
    """Declare ``bayesvae vae-anomaly``'s arguments on its subparser."""
    vae_anomaly.add_argument("data", help="a .csv, .npy or .npz (array X, optional labels) file")
    vae_anomaly.add_argument(
        "--columns", nargs="+", help="feature columns (names; indices for .npy/.npz)"
    )
    vae_anomaly.add_argument(
        "--label-column", help="0/1 label column (1 = anomaly), only to report AUCROC/AUCPR"
    )
    vae_anomaly.add_argument(
        "--likelihood",
        default="gaussian",
        choices=_LIKELIHOODS,
        metavar="NAME",
        help=_CHOICES_HELP,
    )
    vae_anomaly.add_argument("--latent-dim", type=int, default=8)
    vae_anomaly.add_argument("--hidden", type=int, nargs="+", default=[64])
    vae_anomaly.add_argument("--score", default="elbo", choices=("elbo", "iwae"))
    vae_anomaly.add_argument(
        "--num-samples", type=int, default=10, help="guide draws per row (IWAE's K)"
    )
    vae_anomaly.add_argument(
        "--contamination", type=float, default=0.1, help="share flagged on the data, (0, 0.5]"
    )
    vae_anomaly.add_argument("--epochs", type=int, default=100)
    vae_anomaly.add_argument("--seed", type=int, default=0)
    vae_anomaly.add_argument("--no-progress", action="store_true", help="no progress bar")
    vae_anomaly.add_argument("--json", action="store_true", help="print one JSON object")
    vae_anomaly.add_argument("--out", help="run folder: the detector, scores.csv, result.json")
    vae_anomaly.add_argument(
        "--overwrite", action="store_true", help="replace a run already in --out"
    )
    vae_anomaly.add_argument(
        "--report", action="store_true", help="also write report.html and report.md into --out"
    )
    vae_anomaly.set_defaults(run=_run_vae_anomaly)


def _topics_arguments(topics: argparse.ArgumentParser) -> None:
    """Declare ``bayesvae topics``'s arguments on its subparser."""
    topics.add_argument(
        "corpus",
        help="a .txt (one document per line) or .txt.gz, a folder of .txt files, a .csv "
        "(with --column), or a bag of words (.npz/.npy)",
    )
    topics.add_argument("--topics", type=int, required=True, help="number of topics K >= 2")
    topics.add_argument("--backend", default="pyro", choices=("pyro", "numpyro"))
    topics.add_argument("--epochs", type=int, default=100)
    topics.add_argument("--batch-size", type=int, default=200)
    topics.add_argument("--lr", type=float, default=2e-3)
    topics.add_argument("--column", help="text column of a CSV corpus")
    topics.add_argument("--vocab-size", type=int, default=2000, help="most frequent words kept")
    topics.add_argument("--min-df", type=int, default=2, help="a word's minimum document count")
    topics.add_argument(
        "--max-df", type=float, default=0.5, help="a word's maximum share of documents"
    )
    topics.add_argument("--seed", type=int, default=0)
    topics.add_argument("--no-progress", action="store_true")
    topics.add_argument("--json", action="store_true", help="print one JSON object")
    topics.add_argument(
        "--out", help="run folder: model, vocabulary, topics.csv, doc_topics.csv, top_words.png"
    )
    topics.add_argument("--overwrite", action="store_true", help="replace a run already in --out")
    _add_checkpoint_options(topics)
    topics.add_argument(
        "--report", action="store_true", help="also write report.html and report.md into --out"
    )
    topics.set_defaults(run=_run_topics)


def _fit_arguments(fit: argparse.ArgumentParser) -> None:
    """Declare ``bayesvae fit``'s arguments on its subparser."""
    fit.add_argument("model", help="FILE.py:FUNCTION, a plain Pyro model")
    fit.add_argument("--data", required=True, help="a .csv, .npz or .json file")
    fit.add_argument(
        "--bind",
        action="append",
        default=[],
        metavar="ARG=COLUMN",
        help="take argument ARG from COLUMN (repeatable); otherwise by the same name",
    )
    fit.add_argument("--method", default="svi", choices=("svi", "mcmc", "both"))
    fit.add_argument(
        "--guide",
        default="normal",
        choices=_AUTOGUIDES,
        metavar="NAME",
        help="AutoGuide, one of %(choices)s (default: %(default)s)",
    )
    fit.add_argument("--steps", type=int, default=2000, help="SVI steps")
    fit.add_argument(
        "--elbo",
        choices=_OBJECTIVES,
        metavar="NAME",
        help="SVI objective, one of %(choices)s (default: trace)",
    )
    fit.add_argument(
        "--particles",
        type=int,
        default=1,
        help="samples per step; the bound's K for --elbo iwae, renyi, cubo",
    )
    fit.add_argument("--alpha", type=float, help="order of --elbo renyi (default 0.5)")
    fit.add_argument("--lr", type=float, default=None, help="SVI learning rate (default 0.03)")
    fit.add_argument("--num-samples", type=int, default=1000, help="NUTS draws per chain")
    fit.add_argument("--num-warmup", type=int, default=1000, help="NUTS warm-up per chain")
    fit.add_argument("--chains", type=int, default=4, help="NUTS chains")
    fit.add_argument(
        "--jit",
        action="store_true",
        help="compile a Pyro program's NUTS potential with the PyTorch JIT (often 2-3x faster)",
    )
    fit.add_argument("--seed", type=int, default=0)
    fit.add_argument("--out", help="run folder: fits, figures, report.html and report.md")
    fit.add_argument("--overwrite", action="store_true", help="replace a run already in --out")
    fit.add_argument("--report", action="store_true", help="write the report (needs --out)")
    fit.add_argument("--no-progress", action="store_true")
    fit.add_argument("--json", action="store_true", help="print one JSON object")
    fit.set_defaults(run=_run_fit)


def _text_vae_arguments(text_vae: argparse.ArgumentParser) -> None:
    """Declare ``bayesvae text-vae``'s arguments on its subparser."""
    text_vae.add_argument(
        "corpus", help="a .txt file (one document per line), a folder of .txt files, or a CSV"
    )
    text_vae.add_argument("--column", help="text column of a CSV corpus")
    text_vae.add_argument("--out", help="run folder: model, result.json, samples, homotopy")
    text_vae.add_argument("--overwrite", action="store_true", help="replace a run in --out")
    text_vae.add_argument("--report", action="store_true", help="write the report (needs --out)")
    text_vae.add_argument("--epochs", type=int, default=20)
    text_vae.add_argument("--batch-size", type=int, default=64)
    text_vae.add_argument("--lr", type=float, default=1e-3)
    text_vae.add_argument("--kl-warmup", type=int, default=5, help="KL annealing epochs")
    text_vae.add_argument("--latent-dim", type=int, default=16)
    text_vae.add_argument("--embedding-dim", type=int, default=128)
    text_vae.add_argument("--hidden", type=int, default=256, help="RNN state size")
    text_vae.add_argument("--rnn", default="gru", choices=("gru", "lstm"))
    text_vae.add_argument("--word-dropout", type=float, default=0.25)
    text_vae.add_argument("--free-bits", type=float, default=0.0, help="KL floor per dimension")
    text_vae.add_argument("--vocab-size", type=int, default=10000)
    text_vae.add_argument("--min-tokens", type=int, default=1, help="shortest sentence kept")
    text_vae.add_argument("--max-tokens", type=int, default=40, help="longest sentence kept")
    text_vae.add_argument("--val-fraction", type=float, default=0.1, help="held-out sentences")
    text_vae.add_argument(
        "--num-samples", type=int, default=100, help="importance samples for held-out NLL"
    )
    text_vae.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    text_vae.add_argument("--seed", type=int, default=0)
    text_vae.add_argument("--no-progress", action="store_true", help="no progress bar")
    text_vae.add_argument("--json", action="store_true", help="print one JSON object")
    text_vae.set_defaults(run=_run_text_vae)


def _report_arguments(report: argparse.ArgumentParser) -> None:
    """Declare ``bayesvae report``'s arguments on its subparser."""
    report.add_argument("run_dir", help="a run folder (with config.yaml)")
    report.add_argument("--title", help="report title")
    report.set_defaults(run=_run_report)


class _HelpFormatter(argparse.HelpFormatter):
    """``--help`` shows every option's default (not for flags, options without one, or help
    that already names its default)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        if (
            "default" in text
            or any(default is hidden for hidden in (None, False, argparse.SUPPRESS))
            or not action.option_strings
        ):
            return text
        shown = " ".join(map(str, default)) if isinstance(default, (list, tuple)) else default
        return f"{text} (default: {shown})"


def _show_defaults(parser: argparse.ArgumentParser) -> None:
    """Give options without a help text one (their name), so the formatter shows the default."""
    for action in parser._actions:
        if action.help is None and action.option_strings:
            action.help = action.dest.replace("_", " ")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``bayesvae`` console script; returns the exit code."""
    import warnings

    # ArviZ announces its 1.0 refactor on import; users of this command can do nothing about it.
    warnings.filterwarnings("ignore", message=r"\s*ArviZ is undergoing", category=FutureWarning)
    parser = _build_parser()
    args = parser.parse_args(argv)
    for flag in ("verbose", "quiet", "debug"):
        setattr(args, flag, vars(args).get(flag, False))
    if args.verbose and args.quiet:
        parser.error("-v/--verbose and -q/--quiet exclude each other")
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.ERROR if args.quiet else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    import os

    debug = args.debug or os.environ.get("BAYESVAE_DEBUG", "") not in ("", "0")
    _use_compilation_cache()
    out = None if vars(args).get("out") is None else Path(args.out)
    created_out = out is not None and not out.exists()
    try:
        if out is not None:  # only the commands that write a run folder
            prepare_out(
                out,
                overwrite=vars(args).get("overwrite", False),
                resume=vars(args).get("resume", False),
            )
        return int(args.run(args))
    except (UsageError, ValueError, TypeError, OSError, EOFError, RuntimeError) as err:
        if created_out and out is not None:
            _remove_if_empty(out)  # a refused command leaves no empty folder behind
        if debug:
            raise
        print(f"bayesvae {args.command}: error: {_one_line(err)}", file=sys.stderr)
        return 2


def _use_compilation_cache() -> None:
    """JAX's persistent compilation cache for this command's NumPyro runs (a second NUTS run of
    the same model reads its compiled sampler instead of compiling it); ``BAYESVAE_JAX_CACHE``
    names the folder or turns it off. A folder that cannot be made only costs the speed."""
    from bayesvae.backends.compilation_cache import enable_compilation_cache

    try:
        enable_compilation_cache()
    except OSError as err:
        logging.getLogger(__name__).info("no JAX compilation cache: %s", err)


def _remove_if_empty(folder: Path) -> None:
    """Remove ``folder`` if it exists and holds nothing (what ``prepare_out`` made for a command
    that then failed)."""
    try:
        folder.rmdir()
    except OSError:
        pass  # missing, or it holds something: leave it as it is


def _one_line(err: BaseException) -> str:
    """An error as one line: its first line, with the file an ``OSError`` names."""
    if isinstance(err, OSError) and err.filename is not None and err.strerror:
        text = f"{err.filename}: {err.strerror}"
    else:
        lines = str(err).strip().splitlines()
        text = lines[0] if lines else type(err).__name__
    return text if isinstance(err, (UsageError, ValueError)) else f"{text} ({type(err).__name__})"


if __name__ == "__main__":
    sys.exit(main())
