"""NumPyro twin of :class:`bayesvae.models.VAE`: the same networks (MLP or convolutional, read
layer by layer from the torch model and run in JAX with torch's weight layouts, inside Equinox
modules registered with ``numpyro.contrib.module.eqx_module``), the same model and guide, and a
training loop that runs each epoch's minibatches inside one compiled ``lax.scan``.

The twin starts from the torch model's current weights and writes the trained weights back into
it (:meth:`NumPyroVAE.export_to`), so ``encode``, ``decode``, ``sample``, ``log_likelihood``,
saving and loading are the Pyro model's own. ``bayesvae.fit(vae, x, backend="numpyro")`` does
all of this in one call.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from bayesvae.backends.numpyro.loop import SVISettings, TwinRecord, train
from bayesvae.data.validation import check_choice

__all__ = [
    "NumPyroVAE",
    "bernoulli_16bit",
    "gaussian_log_density",
    "gaussian_mlp",
    "torch_program",
    "torch_state",
]

_ACTIVATIONS = {
    nn.ReLU: "relu",
    nn.Tanh: "tanh",
    nn.Softplus: "softplus",
    nn.ELU: "elu",
    nn.GELU: "gelu",
    nn.LeakyReLU: "leaky_relu",
}


def torch_program(module: nn.Module, prefix: str) -> tuple[tuple[Any, ...], ...]:
    """The layers of a (nested) ``nn.Sequential`` as a static program: ``("linear", name)``,
    ``("conv", name, stride, padding)``, ``("deconv", name, stride, padding, output_padding,
    kernel)`` or ``("act", kind)``; ``name`` prefixes the layer's weights in the state dict."""
    steps: list[tuple[Any, ...]] = []
    for name, child in module.named_children():
        path = f"{prefix}.{name}"
        if isinstance(child, nn.Sequential):
            steps += torch_program(child, path)
        elif isinstance(child, nn.Linear):
            steps.append(("linear", path))
        elif isinstance(child, nn.Conv2d):
            steps.append(("conv", path, child.stride[0], child.padding[0]))
        elif isinstance(child, nn.ConvTranspose2d):
            steps.append(
                (
                    "deconv",
                    path,
                    child.stride[0],
                    child.padding[0],
                    tuple(child.output_padding),
                    child.kernel_size[0],
                )
            )
        elif type(child) in _ACTIVATIONS:
            steps.append(("act", _ACTIVATIONS[type(child)]))
        else:
            raise TypeError(f"no JAX translation for layer {path} ({type(child).__name__}).")
    return tuple(steps)


def _run(program: tuple[tuple[Any, ...], ...], params: dict[str, Any], x: Any) -> Any:
    import jax
    import jax.numpy as jnp

    for step in program:
        kind = step[0]
        if kind == "linear":
            x = x @ params[f"{step[1]}.weight"].T + params[f"{step[1]}.bias"]
        elif kind == "conv":
            _, name, stride, pad = step
            x = jax.lax.conv_general_dilated(
                x,
                params[f"{name}.weight"],
                (stride, stride),
                [(pad, pad), (pad, pad)],
                dimension_numbers=("NCHW", "OIHW", "NCHW"),
            )
            x = x + params[f"{name}.bias"][None, :, None, None]
        elif kind == "deconv":
            # torch's ConvTranspose2d as a convolution of the dilated input with the flipped,
            # transposed kernel
            _, name, stride, pad, out_pad, k = step
            kernel = jnp.flip(params[f"{name}.weight"], (2, 3)).transpose(1, 0, 2, 3)
            x = jax.lax.conv_general_dilated(
                x,
                kernel,
                (1, 1),
                [(k - 1 - pad, k - 1 - pad + out_pad[0]), (k - 1 - pad, k - 1 - pad + out_pad[1])],
                lhs_dilation=(stride, stride),
                dimension_numbers=("NCHW", "OIHW", "NCHW"),
            )
            x = x + params[f"{name}.bias"][None, :, None, None]
        else:
            x = {
                "relu": jax.nn.relu,
                "tanh": jnp.tanh,
                "softplus": jax.nn.softplus,
                "elu": jax.nn.elu,
                "gelu": lambda v: jax.nn.gelu(v, approximate=False),
                "leaky_relu": lambda v: jax.nn.leaky_relu(v, 0.01),
            }[step[1]](x)
    return x


def bernoulli_16bit(key: Any, probs: Any) -> Any:
    """Bernoulli draws (0./1., ``probs``' shape and dtype) from 16-bit uniforms, two per
    32-bit random word. ``jax.random.bernoulli`` spends a word per draw; on a 2-core CPU that
    made binarizing a 128 x 784 minibatch about 15 % of an MLP VAE's step, and halving the
    words took about 10 % off the step. A draw is 1
    with probability ``ceil(65536 p) / 65536``: within 2**-16 of ``p``, exact at 0 and 1."""
    import jax
    import jax.numpy as jnp

    flat = probs.reshape(probs.shape[0], -1)
    width = flat.shape[1]
    words = jax.random.bits(key, (flat.shape[0], (width + 1) // 2), jnp.uint32)
    uniform16 = jnp.concatenate([words >> 16, words & 0xFFFF], axis=1)[:, :width]
    draws = uniform16.astype(jnp.float32) < flat.astype(jnp.float32) * 65536.0
    return draws.astype(probs.dtype).reshape(probs.shape)


def torch_state(module: nn.Module) -> dict[str, Any]:
    """``module``'s state dict as JAX arrays (the weights a twin starts from)."""
    import jax.numpy as jnp

    return {k: jnp.asarray(v.detach().cpu().numpy()) for k, v in module.state_dict().items()}


def gaussian_mlp(state: dict[str, Any], net: nn.Module, prefix: str) -> Any:
    """An Equinox module mirroring a torch MLP ``net`` (its weights under ``prefix`` in
    ``state``) whose last layer gives ``(loc, log_var)``: ``v (..., in) -> (loc, scale)``, each
    ``(..., out)``, as :class:`bayesvae.models.vae.MLPEncoder` computes them."""
    import equinox as eqx
    import jax.numpy as jnp

    class GaussianMLP(eqx.Module):
        params: dict
        program: tuple = eqx.field(static=True)

        def __call__(self, v: Any) -> tuple[Any, Any]:
            loc, log_var = jnp.split(_run(self.program, self.params, v), 2, axis=-1)
            return loc, jnp.exp(0.5 * log_var)

    owner_prefix = prefix.split(".")[0] + "."
    return GaussianMLP(
        {k: v for k, v in state.items() if k.startswith(owner_prefix)}, torch_program(net, prefix)
    )


def gaussian_log_density(value: Any, loc: Any, scale: Any) -> Any:
    """``log N(value | loc, diag(scale^2))`` summed over the last axis (broadcast)."""
    import jax.numpy as jnp

    z = (value - loc) / scale
    return (-0.5 * z**2 - jnp.log(scale) - 0.5 * math.log(2 * math.pi)).sum(-1)


def iaf_flows(vae: Any, state: dict[str, Any]) -> Any:
    """An Equinox module mirroring ``vae.flows``, Pyro's conditional affine autoregressive flows
    (``flow_type="iaf"``): weights and biases are parameters, the autoregressive masks fixed
    (boolean, so NumPyro does not train them). ``module.transforms(features)`` gives NumPyro's
    :class:`~numpyro.distributions.flows.InverseAutoregressiveTransform` for each flow,
    conditioned on the encoder's ``features (..., H)``, as Pyro's ``flow.condition(features)``
    computes it: ``[features, z]`` through the masked MLP (ReLU), then ``(mean, log_scale)``,
    the log scale clipped to [-5, 3] with the gradient kept, ``y = exp(log_scale) z + mean``.
    ``state``: ``torch_state(vae)``."""
    import equinox as eqx
    import jax
    import jax.numpy as jnp

    layers = len(vae.flows[0].nn.layers)
    latent_dim = vae.latent_dim

    class IAFFlows(eqx.Module):
        params: dict
        masks: dict
        num_flows: int = eqx.field(static=True)

        def _shift_and_log_scale(self, flow: int, features: Any, z: Any) -> tuple[Any, Any]:
            context = jnp.broadcast_to(features, z.shape[:-1] + features.shape[-1:])
            h = jnp.concatenate([context, z], axis=-1)
            for layer in range(layers):
                name = f"flows.{flow}.nn.layers.{layer}"
                weight = jnp.where(self.masks[name], self.params[f"{name}.weight"], 0.0)
                h = h @ weight.T + self.params[f"{name}.bias"]
                if layer < layers - 1:
                    h = jax.nn.relu(h)
            h = h.reshape(h.shape[:-1] + (2, latent_dim))
            return h[..., 0, :], h[..., 1, :]

        def transforms(self, features: Any) -> list[Any]:
            from numpyro.distributions.flows import InverseAutoregressiveTransform

            return [
                InverseAutoregressiveTransform(
                    lambda z, flow=flow: self._shift_and_log_scale(flow, features, z)
                )
                for flow in range(self.num_flows)
            ]

    params = {
        k: v for k, v in state.items() if k.startswith("flows.") and k.endswith(("weight", "bias"))
    }
    masks = {
        k[: -len(".mask")]: np.asarray(v, dtype=bool)
        for k, v in state.items()
        if k.startswith("flows.") and k.endswith(".mask")
    }
    return IAFFlows(params, masks, vae.num_flows)


def _networks(vae: Any, state: dict[str, Any]) -> tuple[Any, Any]:
    """Equinox encoder and decoder mirroring ``vae``'s torch networks (weights from ``state``,
    ``torch_state(vae)``)."""
    import equinox as eqx
    import jax.numpy as jnp

    shape = tuple(vae.input_shape)
    conv = vae.config["encoder"] == "conv"
    if conv:
        enc_programs = (
            torch_program(vae.encoder.conv, "encoder.conv"),
            torch_program(vae.encoder.head, "encoder.head"),
        )
        dec_programs = (
            torch_program(vae.decoder.head, "decoder.head"),
            torch_program(vae.decoder.deconv, "decoder.deconv"),
        )
        start_shape = tuple(vae.decoder.start_shape)
    else:
        enc_programs = (torch_program(vae.encoder.net, "encoder.net"),)
        dec_programs = (torch_program(vae.decoder.net, "decoder.net"),)
        start_shape = ()

    class Encoder(eqx.Module):
        params: dict
        programs: tuple = eqx.field(static=True)

        def __call__(self, x: Any) -> tuple[Any, Any]:
            if conv:
                features = _run(self.programs[0], self.params, x).reshape(x.shape[0], -1)
                out = _run(self.programs[1], self.params, features)
            else:
                out = _run(self.programs[0], self.params, x.reshape(x.shape[0], -1))
            loc, log_var = jnp.split(out, 2, axis=-1)
            return loc, jnp.exp(0.5 * log_var)

        def features(self, x: Any) -> Any:
            """The MLP encoder's last hidden layer ``h(x)`` (what flow guides condition on)."""
            return _run(self.programs[0][:-1], self.params, x.reshape(x.shape[0], -1))

        def params_from(self, features: Any) -> tuple[Any, Any]:
            """``(loc, scale)`` from :meth:`features`."""
            loc, log_var = jnp.split(_run(self.programs[0][-1:], self.params, features), 2, -1)
            return loc, jnp.exp(0.5 * log_var)

    class Decoder(eqx.Module):
        params: dict
        programs: tuple = eqx.field(static=True)

        def __call__(self, z: Any) -> Any:
            if conv:
                hidden = _run(self.programs[0], self.params, z).reshape(z.shape[0], *start_shape)
                return _run(self.programs[1], self.params, hidden)
            return _run(self.programs[0], self.params, z).reshape(z.shape[0], *shape)

    encoder = Encoder({k: v for k, v in state.items() if k.startswith("encoder.")}, enc_programs)
    decoder = Decoder({k: v for k, v in state.items() if k.startswith("decoder.")}, dec_programs)
    return encoder, decoder


class NumPyroVAE(TwinRecord):
    """Jitted NumPyro training of a :class:`~bayesvae.models.VAE`'s model and guide.

    ``NumPyroVAE(vae)`` mirrors ``vae`` (its configuration and current weights);
    :meth:`fit` trains; :meth:`export_to` writes the weights back into a torch VAE.
    """

    #: objectives :meth:`fit` trains with (``bayesvae.fit(backend="numpyro")`` refuses others)
    supported_elbos: ClassVar[tuple[str, ...]] = ("trace", "meanfield", "iwae", "renyi")

    def __init__(self, vae: Any) -> None:
        super().__init__()
        self.config = dict(vae.config)
        self.input_shape = tuple(vae.input_shape)
        self.latent_dim = vae.latent_dim
        #: standard-normal numbers one draw of the guide takes per row
        self.noise_dim = vae.latent_dim
        self.likelihood = vae.likelihood
        self.beta = vae.beta
        self.fixed_scale = float(self.config["gaussian_scale"] or 1.0)
        self.num_flows = vae.num_flows
        if self.num_flows and (
            self.config["flow_type"] != "iaf" or self.config["encoder"] != "mlp"
        ):
            raise ValueError(
                "the NumPyro backend has IAF flow guides on MLP encoders only (flow_type='iaf', "
                "encoder='mlp'); use backend='pyro' for the others."
            )
        state = torch_state(vae)
        encoder, decoder = _networks(vae, state)
        #: name -> Equinox module; each name prefixes its weights in the torch state dict and
        #: registers them with NumPyro as ``"{name}$params"``
        self.networks: dict[str, Any] = {"encoder": encoder, "decoder": decoder}
        if self.num_flows:
            self.networks["flows"] = iaf_flows(vae, state)
        self.networks.update(self._more_networks(vae, state))
        self.params: dict[str, Any] | None = None
        self._chunk_logsumexp: Any = None  # jitted by _importance_chunk on first use

    def _more_networks(self, vae: Any, state: dict[str, Any]) -> dict[str, Any]:
        """Networks a twin of a larger VAE mirrors besides the encoder, decoder and flows (none
        here), by name; ``state`` is ``torch_state(vae)``."""
        return {}

    @property
    def encoder(self) -> Any:
        """The Equinox encoder ``x -> (loc, scale)`` with the mirrored (initial) weights."""
        return self.networks["encoder"]

    @property
    def decoder(self) -> Any:
        """The Equinox decoder ``z -> likelihood parameters`` with the mirrored weights."""
        return self.networks["decoder"]

    # ------------------------------------------------------------------ model and guide
    def _log_likelihood(self, decoded: Any, x: Any, decoder: Any) -> Any:
        import jax
        import jax.numpy as jnp

        axes = tuple(range(1, x.ndim))
        if self.likelihood == "bernoulli":  # cross-entropy, grey levels allowed
            return (x * decoded - jax.nn.softplus(decoded)).sum(axes)
        if "decoder.log_scale" in decoder.params:
            log_scale = decoder.params["decoder.log_scale"]
        else:
            log_scale = jnp.log(self.fixed_scale)
        z = (x - decoded) * jnp.exp(-log_scale)
        return (-0.5 * z**2 - log_scale - 0.5 * math.log(2 * math.pi)).sum(axes)

    def model(self, x: Any, num_data: int) -> None:
        import jax.numpy as jnp
        import numpyro
        import numpyro.distributions as dist
        from numpyro.contrib.module import eqx_module

        decoder = eqx_module("decoder", self.decoder)
        with numpyro.handlers.scale(scale=num_data / x.shape[0]), numpyro.plate("data", x.shape[0]):
            with numpyro.handlers.scale(scale=self.beta):
                z = numpyro.sample("z", dist.Normal(jnp.zeros(self.latent_dim), 1.0).to_event(1))
            numpyro.factor("x", self._log_likelihood(decoder(z), x, decoder))

    def guide(self, x: Any, num_data: int) -> None:
        import numpyro
        import numpyro.distributions as dist
        from numpyro.contrib.module import eqx_module

        encoder = eqx_module("encoder", self.encoder)
        flows = eqx_module("flows", self.networks["flows"]) if self.num_flows else None
        with numpyro.handlers.scale(scale=num_data / x.shape[0]), numpyro.plate("data", x.shape[0]):
            if flows is None:
                posterior = dist.Normal(*encoder(x)).to_event(1)
            else:  # the Gaussian, then the flows conditioned on the encoder's features
                features = encoder.features(x)
                posterior = dist.TransformedDistribution(
                    dist.Normal(*encoder.params_from(features)).to_event(1),
                    flows.transforms(features),
                )
            with numpyro.handlers.scale(scale=self.beta):
                numpyro.sample("z", posterior)

    # ------------------------------------------------------------------ training
    def fit(
        self,
        x: Any,
        val: Any = None,
        settings: SVISettings | None = None,
        *,
        elbo: str = "trace",
        num_particles: int = 1,
        alpha: float | None = None,
        dynamic_binarization: bool = False,
    ) -> NumPyroVAE:
        """Train on ``x`` (N, *input_shape) as ``settings`` say (:class:`~bayesvae.backends.
        numpyro.loop.SVISettings`; its defaults when ``None``), grey levels binarized afresh at
        every step when ``dynamic_binarization``; each epoch's minibatches (reshuffled, the last
        incomplete one dropped) run in one jitted ``lax.scan`` with one host sync. ``val``
        (already binarized if need be) gets the training objective per epoch; the settings'
        ``early_stopping`` (patience in epochs on ``val_elbo``) stops and keeps the best epoch's
        weights. ``elbo``: ``"trace"`` or ``"meanfield"`` (the ELBO, one draw per row),
        ``"iwae"`` (the importance-weighted bound with ``K = num_particles`` draws per row) or
        ``"renyi"`` (the Rényi bound of order ``alpha``, default 0.5, ``K >= 2``): per-row
        bounds scaled by N/B afterwards, as :class:`bayesvae.infer.objectives.RenyiBound`
        computes them. Returns ``self``; ``history`` has ``epoch``, ``train_elbo``,
        ``val_elbo``, ``lr``, ``seconds`` and ``samples_per_s``."""
        import jax
        import jax.numpy as jnp
        from numpyro.infer import Trace_ELBO, TraceMeanField_ELBO

        check_choice("elbo", elbo, self.supported_elbos)
        settings = SVISettings() if settings is None else settings
        data = jnp.asarray(np.asarray(x, dtype=np.float32))
        objective: Any
        if elbo in ("iwae", "renyi"):
            order = 0.0 if elbo == "iwae" else (0.5 if alpha is None else float(alpha))
            objective = self._particle_bound(num_particles, order)
        elif num_particles != 1 or alpha is not None:
            raise ValueError(f"num_particles and alpha are for elbo='iwae'/'renyi', not {elbo!r}.")
        elif elbo == "meanfield" and self.num_flows:
            raise ValueError(
                "elbo='meanfield' needs a Gaussian guide (its KL in closed form); a flow guide "
                "trains with 'trace', 'iwae' or 'renyi'."
            )
        else:
            objective = TraceMeanField_ELBO() if elbo == "meanfield" else Trace_ELBO()
        init_key, key = jax.random.split(jax.random.PRNGKey(settings.seed))

        def binarize(step_key: Any, batch: tuple[Any, ...]) -> tuple[Any, ...]:
            return (bernoulli_16bit(step_key, batch[0]),)

        run = train(
            self.model,
            self.guide,
            objective,
            (data,),
            settings,
            init_key=init_key,
            key=key,
            val=None if val is None else (jnp.asarray(np.asarray(val, dtype=np.float32)),),
            transform=binarize if dynamic_binarization else None,
            desc="numpyro vae",
        )
        self.params = self.keep(run).params
        return self

    # ------------------------------------------------------------------ evaluation
    def _networks_in(self, param_map: dict[str, Any]) -> dict[str, Any]:
        """The networks with the weights in NumPyro's ``param_map`` (which holds their floating
        arrays only; the rest, such as a flow's masks, comes from the mirrored networks)."""
        import equinox as eqx

        return {
            name: eqx.combine(
                param_map[f"{name}$params"], eqx.filter(network, eqx.is_inexact_array, inverse=True)
            )
            for name, network in self.networks.items()
        }

    def _current_networks(self) -> dict[str, Any]:
        """The networks with the trained weights (the mirrored ones before fit)."""
        return dict(self.networks) if self.params is None else self._networks_in(self.params)

    def _decoded_log_likelihood(self, decoder: Any, z: Any, x: Any) -> Any:
        """``log p(x | z)`` for ``z (K, B, D)`` and ``x (B, ...)`` -> ``(K, B)``."""
        import jax.numpy as jnp

        draws, rows = z.shape[0], x.shape[0]
        decoded = decoder(z.reshape(draws * rows, -1))
        repeated = jnp.broadcast_to(x, (draws, *x.shape)).reshape(decoded.shape)
        return self._log_likelihood(decoded, repeated, decoder).reshape(draws, rows)

    def _log_weights(self, networks: dict[str, Any], x: Any, eps: Any, beta: float = 1.0) -> Any:
        """``log p(x | z) + beta (log p(z) - log q(z | x))`` for ``z = loc + scale * eps``:
        ``x (B, ...)``, ``eps (K, B or 1, noise_dim)`` standard-normal draws -> ``(K, B)``.
        ``beta = 1`` gives the importance weights of ``log p(x)``; training weights the latent
        terms by the VAE's ``beta``, as its model and guide do."""
        import jax.numpy as jnp

        if self.num_flows:
            features = networks["encoder"].features(x)
            loc, scale = networks["encoder"].params_from(features)
        else:
            loc, scale = networks["encoder"](x)
        z = loc + scale * eps  # (K, B, D)
        log_q = gaussian_log_density(z, loc, scale)
        if self.num_flows:  # log q(z_T) = log q(z_0) - sum of each flow's log |det J|
            for transform in networks["flows"].transforms(features):
                z, log_scale = transform.call_with_intermediates(z)
                log_q = log_q - log_scale.sum(-1)
        log_prior = gaussian_log_density(z, jnp.zeros(()), jnp.ones(()))
        log_lik = self._decoded_log_likelihood(networks["decoder"], z, x)
        return log_lik + beta * (log_prior - log_q)

    def _particle_bound(self, num_particles: int, alpha: float) -> Any:
        """A NumPyro objective: the negative Rényi bound of order ``alpha`` (0: the IWAE bound)
        with ``K = num_particles`` reparameterized draws per row, each row's bound computed from
        its own weights and the sum scaled by N/B afterwards (NumPyro's ``RenyiELBO`` would
        need a subsampling plate, which draws a permutation of N every step)."""
        import jax
        from numpyro.infer.elbo import ELBO

        from bayesvae.data.validation import check_positive_int

        num_particles = check_positive_int("num_particles", num_particles)
        if not math.isfinite(alpha) or alpha == 1.0:
            raise ValueError(f"alpha must be a finite number other than 1, got {alpha!r}.")
        if alpha != 0.0 and num_particles < 2:
            raise ValueError("elbo='renyi' needs num_particles >= 2; with one it is the ELBO.")
        twin = self

        class ParticleBound(ELBO):
            def loss_with_mutable_state(
                self, rng_key: Any, param_map: Any, model: Any, guide: Any, *args: Any
            ) -> dict[str, Any]:
                x, num_data = args
                networks = twin._networks_in(param_map)
                eps = jax.random.normal(rng_key, (num_particles, x.shape[0], twin.noise_dim))
                log_w = (1.0 - alpha) * twin._log_weights(networks, x, eps, twin.beta)
                bound = (jax.nn.logsumexp(log_w, axis=0) - math.log(num_particles)) / (1 - alpha)
                return {"loss": -bound.sum() * (num_data / x.shape[0]), "mutable_state": None}

        return ParticleBound(num_particles=num_particles)

    def _importance_chunk(self) -> Any:
        """The jitted ``(networks, x (B, ...), eps (C, B or 1, noise_dim)) -> (B,)``: logsumexp
        over the C draws of ``log p(x, z) - log q(z | x)``. The networks are arguments (pytrees),
        so new weights reuse the compiled function; built on first use."""
        if self._chunk_logsumexp is not None:
            return self._chunk_logsumexp
        import jax

        @jax.jit
        def chunk_logsumexp(networks: dict[str, Any], xb: Any, eps: Any) -> Any:
            return jax.nn.logsumexp(self._log_weights(networks, xb, eps), axis=0)

        self._chunk_logsumexp = chunk_logsumexp
        return chunk_logsumexp

    def log_likelihood(
        self,
        x: Any,
        *,
        num_samples: int = 5000,
        batch_size: int = 100,
        particle_batch: int = 500,
        seed: int = 0,
        noise: Any = None,
    ) -> np.ndarray:
        """Importance-sampled ``log p(x)`` per row, in nats, ``(N,)``: the estimate of
        :meth:`bayesvae.models.VAE.log_likelihood`, ``logsumexp_k[log p(x, z_k) - log q(z_k |
        x)] - log K`` with ``z_k ~ q(z | x)``, computed by one jitted JAX function per chunk of
        ``batch_size`` rows x ``particle_batch`` draws (the last chunks compile once more when
        the sizes do not divide; the function is built once per twin, so later calls reuse its
        compilations). ``x``: ``(N, *input_shape)``; ``seed`` keys the draws;
        ``noise`` (``(num_samples, noise_dim)`` standard-normal draws) shares the same guide
        noise across rows, as the torch method's ``common_noise``, so both give the same
        estimate for the same draws. The weights are the trained ones, or the mirrored torch
        VAE's before :meth:`fit`."""
        import jax
        import jax.numpy as jnp

        from bayesvae.data.validation import check_positive_int

        num_samples = check_positive_int("num_samples", num_samples)
        batch_size = check_positive_int("batch_size", batch_size)
        particle_batch = check_positive_int("particle_batch", particle_batch)
        data = np.asarray(x, dtype=np.float32)
        if data.ndim < 2 or data.shape[1:] not in {
            self.input_shape,
            (math.prod(self.input_shape),),
        }:
            raise ValueError(
                f"x must have shape (N, {', '.join(map(str, self.input_shape))}), got {data.shape}."
            )
        if len(data) == 0 or not np.isfinite(data).all():
            raise ValueError("x must be a non-empty array of finite values.")
        data = data.reshape(len(data), *self.input_shape)
        if noise is not None:
            noise = np.asarray(noise, dtype=np.float32)
            if noise.shape != (num_samples, self.noise_dim):
                raise ValueError(
                    f"noise must have shape (num_samples, noise_dim) = "
                    f"({num_samples}, {self.noise_dim}), got {noise.shape}."
                )
        networks = self._current_networks()
        chunk_logsumexp = self._importance_chunk()
        key = jax.random.PRNGKey(seed)
        out = []
        for start in range(0, len(data), batch_size):
            xb = jnp.asarray(data[start : start + batch_size])
            total = jnp.full((xb.shape[0],), -jnp.inf)
            for first in range(0, num_samples, particle_batch):
                draws = min(particle_batch, num_samples - first)
                if noise is None:
                    chunk_key = jax.random.fold_in(jax.random.fold_in(key, start), first)
                    eps = jax.random.normal(chunk_key, (draws, xb.shape[0], self.noise_dim))
                else:
                    eps = jnp.asarray(noise[first : first + draws, None, :])
                total = jnp.logaddexp(total, chunk_logsumexp(networks, xb, eps))
            out.append(np.asarray(total) - math.log(num_samples))
        return np.concatenate(out)

    def export_to(self, vae: Any) -> Any:
        """Copy the trained weights into the torch ``vae`` (same configuration); returns it."""
        if self.params is None:
            raise RuntimeError("this NumPyroVAE is not fitted yet; call fit(x) first.")
        if dict(vae.config) != self.config:
            raise ValueError("export_to needs a VAE with the same configuration as the twin.")
        trained: dict[str, Any] = {}
        for network in self._networks_in(self.params).values():
            trained.update(network.params)
        state = vae.state_dict()
        with torch.no_grad():
            for name, value in trained.items():
                state[name].copy_(torch.as_tensor(np.array(value), dtype=state[name].dtype))
        return vae
