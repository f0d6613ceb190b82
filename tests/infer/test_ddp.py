"""Data-parallel SVI: two gloo processes on loopback (torchrun) give the same parameters as one
process with the same global minibatches. The model is an AnomalyMixture with a MAP guide, whose
gradient is deterministic, so any difference would come from the data-parallel plumbing."""

import os
import socket
import subprocess
import sys
import textwrap

import numpy as np
import pyro
import pytest
import torch

import bayesvae
from bayesvae.infer.distributed import DDPContext
from bayesvae.models.anomaly import AnomalyMixtureModel as AnomalyMixture

SCRIPT = textwrap.dedent(
    """
    import sys

    import numpy as np
    import pyro
    import torch
    import torch.distributed as dist

    import bayesvae
    from bayesvae.models.anomaly import AnomalyMixtureModel as AnomalyMixture

    out = sys.argv[1]
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(size=(256, 3)), rng.normal(4.0, 1.0, size=(16, 3))])
    model = AnomalyMixture(2, guide_type="map")
    result = bayesvae.fit(model, X, epochs=3, batch_size=64, lr=0.05, seed=0, progress=False,
                          strategy="ddp", checkpoint_dir=out + "/ckpt")
    store = {k: v.detach().clone() for k, v in pyro.get_param_store().items()}
    torch.save({"params": store, "history": result.history.to_dict("list"),
                "settings": result.settings}, f"{out}/rank{dist.get_rank()}.pt")
    dist.destroy_process_group()
    """
)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _torchrun(tmp_path, name, script, *, timeout):
    """Run ``script`` (written to ``tmp_path/name``) in two gloo processes with ``tmp_path`` as
    its argument, and fail with its stderr if it fails."""
    path = tmp_path / name
    path.write_text(script)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2"]
    command += ["--master_addr", "127.0.0.1", "--master_port", str(_free_port())]
    command += [str(path), str(tmp_path)]
    run = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
    assert run.returncode == 0, run.stderr[-3000:]


def _data():
    rng = np.random.default_rng(0)
    return np.vstack([rng.normal(size=(256, 3)), rng.normal(4.0, 1.0, size=(16, 3))])


def _by_site(params, prefix=None):
    """Parameter values keyed by site name (each process numbers its models differently)."""
    return {
        name.split(".", 1)[1]: value.detach()
        for name, value in params.items()
        if prefix is None or name.startswith(prefix + ".")
    }


def test_two_processes_match_one(tmp_path):
    _torchrun(tmp_path, "train.py", SCRIPT, timeout=120)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in (0, 1)]
    assert ranks[0]["settings"]["world_size"] == 2
    first, second = (_by_site(r["params"]) for r in ranks)
    assert first.keys() == second.keys()
    for name in first:  # every rank holds exactly the same parameters
        torch.testing.assert_close(first[name], second[name], rtol=0, atol=0, msg=name)
    # only rank 0 wrote checkpoints
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["best.pt", "last.pt"]

    pyro.clear_param_store()
    single = AnomalyMixture(2, guide_type="map")
    result = bayesvae.fit(single, _data(), epochs=3, batch_size=64, lr=0.05, seed=0, progress=False)
    reference = _by_site(pyro.get_param_store(), single.pyro_name)
    assert reference.keys() == first.keys()
    for name in reference:
        torch.testing.assert_close(first[name], reference[name], rtol=1e-5, atol=1e-5, msg=name)
    np.testing.assert_allclose(
        result.history["train_elbo"], ranks[0]["history"]["train_elbo"], rtol=1e-5
    )


def test_ddp_needs_torchrun(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ValueError, match="launched by torchrun"):
        bayesvae.fit(AnomalyMixture(1), _data(), epochs=1, strategy="ddp", progress=False)
    with pytest.raises(ValueError, match="unknown strategy"):
        bayesvae.fit(AnomalyMixture(1), _data(), epochs=1, strategy="horovod", progress=False)


def test_global_batches_split_into_contiguous_shards():
    batch = (torch.arange(8).reshape(8, 1),)
    shards = [DDPContext(r, 2, torch.device("cpu")).local_rows(batch)[0] for r in (0, 1)]
    assert torch.equal(torch.cat(shards), batch[0])
    with pytest.raises(ValueError, match="divisible"):
        DDPContext(0, 3, torch.device("cpu")).check_batch_size(64)


VAE_SCRIPT = textwrap.dedent(
    """
    import sys

    import numpy as np
    import torch
    import torch.distributed as dist

    import bayesvae

    out = sys.argv[1]
    x = (np.random.default_rng(0).random((128, 16)) > 0.5).astype(np.float32)
    vae = bayesvae.VAE(16, latent_dim=2, hidden_dims=(8,), seed=0)
    result = bayesvae.fit(vae, x[:96], val=x[96:], epochs=3, batch_size=32, seed=0,
                          progress=False, strategy="ddp", early_stopping=1)
    torch.save(result.history.to_dict("list"), f"{out}/vae{dist.get_rank()}.pt")
    dist.destroy_process_group()
    """
)


def test_validation_rows_agree_on_every_rank_so_early_stopping_stops_them_together(tmp_path):
    _torchrun(tmp_path, "vae.py", VAE_SCRIPT, timeout=180)
    first, second = (torch.load(tmp_path / f"vae{r}.pt", weights_only=False) for r in (0, 1))
    assert first["epoch"] == second["epoch"]
    np.testing.assert_array_equal(first["val_elbo"], second["val_elbo"])


PROGRAM_SCRIPT = textwrap.dedent(
    """
    import sys

    import numpy as np
    import pyro
    import pyro.distributions as dist
    import torch
    import torch.distributed as dist_

    import bayesvae

    def regression(x, y):
        a = pyro.sample("a", dist.Normal(0.0, 5.0))
        b = pyro.sample("b", dist.Normal(0.0, 5.0))
        with pyro.plate("data", len(x), subsample_size=32) as index:
            pyro.sample("y", dist.Normal(a + b * x[index], 1.0), obs=y[index])

    out = sys.argv[1]
    rng = np.random.default_rng(0)
    x = rng.normal(size=400)
    y = 1.0 + 2.0 * x + rng.normal(size=400)
    result = bayesvae.fit(regression, x, y, num_steps=600, seed=0, progress=False,
                          strategy="ddp")
    store = {k: v.detach().clone() for k, v in pyro.get_param_store().items()}
    torch.save({"params": store, "settings": result.settings,
                "history": result.history.to_dict("list")}, f"{out}/rank{dist_.get_rank()}.pt")
    dist_.destroy_process_group()
    """
)


def test_a_users_program_trains_data_parallel_with_identical_parameters(tmp_path):
    _torchrun(tmp_path, "program.py", PROGRAM_SCRIPT, timeout=180)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in (0, 1)]
    assert ranks[0]["settings"]["world_size"] == 2 and ranks[0]["settings"]["strategy"] == "ddp"
    first, second = ranks[0]["params"], ranks[1]["params"]
    assert first.keys() == second.keys()
    for name in first:  # the averaged gradients keep every rank's parameters identical
        torch.testing.assert_close(first[name], second[name], rtol=0, atol=0, msg=name)
    np.testing.assert_array_equal(  # and the (averaged) training loss too
        ranks[0]["history"]["train_elbo"], ranks[1]["history"]["train_elbo"]
    )
    locs = {name: value for name, value in first.items() if "loc" in name}
    assert locs, sorted(first)
    # the AutoNormal means land on the least-squares line (a ~ 1, b ~ 2)
    means = torch.cat([v.reshape(-1) for _, v in sorted(locs.items())])
    torch.testing.assert_close(means, torch.tensor([1.0, 2.0]), atol=0.2, rtol=0)
