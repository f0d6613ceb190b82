"""The SVI engine (init / step / evaluate / state_dict) and the loop's built-in callbacks."""

import math

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.infer import Trace_ELBO

from bayesvae.infer.callbacks import Checkpointer, FitState, KLWarmup
from bayesvae.infer.engine import SVIEngine


def _model(y):
    mu = pyro.sample("mu", dist.Normal(0.0, 10.0))
    with pyro.plate("data", len(y)):
        pyro.sample("obs", dist.Normal(mu, 1.0), obs=y)


def _guide(y):
    loc = pyro.param("loc", torch.tensor(0.0))
    scale = pyro.param("scale", torch.tensor(1.0), constraint=dist.constraints.positive)
    pyro.sample("mu", dist.Normal(loc, scale))


def _engine(**options):
    return SVIEngine(_model, _guide, Trace_ELBO(), **{"optimizer": "adam", "lr": 0.05, **options})


def test_an_engine_driven_by_hand_finds_the_conjugate_posterior():
    pyro.clear_param_store()
    pyro.set_rng_seed(0)
    y = torch.randn(200) + 2.0
    engine = _engine(lr_schedule="cosine", horizon=20)
    params = engine.init(y)
    assert len(params) == 2 and engine.optimizer is not None
    for _row in range(20):
        losses = torch.stack([engine.step(y) for _ in range(50)])
        assert torch.isfinite(losses).all()
        assert math.isfinite(engine.mean_grad_norm())  # sampled within every row
        engine.end_row()
    exact = y.sum() / (len(y) + 0.01)
    assert float(pyro.param("loc").detach()) == pytest.approx(float(exact), abs=0.05)
    assert engine.current_lr == pytest.approx(0.0, abs=1e-9)  # the cosine reached its end
    assert engine.parameters_finite()


def test_engine_state_round_trips_and_a_resumed_cosine_gets_its_new_horizon():
    pyro.clear_param_store()
    y = torch.randn(50)
    first = _engine(lr_schedule="cosine", horizon=4)
    first.init(y)
    for _ in range(2):
        first.step(y)
        first.end_row()
    saved = first.state_dict()
    second = _engine(lr_schedule="cosine", horizon=8)
    second.init(y)
    second.load_state_dict(saved, horizon=8)
    assert second.scheduler.last_epoch == 2
    # two rows into eight: the rate of the new horizon, not of the old one (half way)
    expected = 0.05 * 0.5 * (1 + math.cos(math.pi * 2 / 8))
    assert second.current_lr == pytest.approx(expected)


def test_kl_warmup_ramps_by_the_loops_step_count():
    warmup = KLWarmup(4)
    assert [warmup.weight(s) for s in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    assert KLWarmup(0).weight(0) == 1.0
    with pytest.raises(ValueError, match="steps"):
        KLWarmup(-1)


def test_the_checkpointer_writes_last_every_n_rows_best_on_improvement(tmp_path):
    state = FitState(model=torch.nn.Linear(1, 1), optimizer=None)
    checks = []
    writer = Checkpointer(
        tmp_path,
        every=3,
        last_row=7,
        payload=lambda: {"epoch": state.epoch},
        check=lambda: checks.append(state.epoch),
    )
    written = {}
    for epoch, improved in zip(range(1, 8), [1, 0, 0, 1, 0, 0, 0], strict=True):
        state.epoch = epoch
        if improved:
            state.best_epoch = epoch
        writer.on_epoch_end(state)
        for name in ("last.pt", "best.pt"):
            if (tmp_path / name).exists():
                written[name] = torch.load(tmp_path / name, weights_only=True)["epoch"]
        if epoch == 3:
            assert written == {"last.pt": 3, "best.pt": 1}
    assert written == {"last.pt": 7, "best.pt": 4}  # rows 3, 6 and the last; best at 1 and 4
    assert checks == [1, 3, 4, 6, 7]  # parameters checked before every write


def test_metrics_go_to_tensorboard_and_mlflow_when_installed(monkeypatch, tmp_path):
    import sys
    import types

    import bayesvae
    from bayesvae.infer.callbacks import MLflowLogger, TensorBoardLogger

    scalars, logged = [], []

    class SummaryWriter:  # what the callback needs of torch.utils.tensorboard's
        def __init__(self, log_dir):
            self.log_dir = log_dir

        def add_scalar(self, tag, value, global_step):
            scalars.append((tag, value, global_step))

        def flush(self):
            scalars.append("flushed")

    monkeypatch.setitem(
        sys.modules, "torch.utils.tensorboard", types.SimpleNamespace(SummaryWriter=SummaryWriter)
    )
    monkeypatch.setitem(
        sys.modules,
        "mlflow",
        types.SimpleNamespace(log_metrics=lambda metrics, step: logged.append((metrics, step))),
    )
    y = torch.randn(40)
    result = bayesvae.fit(
        _model,
        y,
        guide=_guide,
        num_steps=20,
        eval_every=10,
        progress=False,
        callbacks=[TensorBoardLogger(tmp_path), MLflowLogger()],
    )
    assert ("fit/train_elbo", result.history["train_elbo"].iloc[0], 10) in scalars
    assert scalars[-1] == "flushed"
    assert [step for _, step in logged] == [10, 20]
    assert logged[-1][0]["train_elbo"] == pytest.approx(result.history["train_elbo"].iloc[-1])
    monkeypatch.setitem(sys.modules, "mlflow", None)  # not installed
    with pytest.raises(ImportError, match="pip install mlflow"):
        MLflowLogger()
