r"""Product feedback alignment, PFA (Li Ji-An & Benna 2024).

The error of the upper area does not return through one matrix but through an explicit
**intermediate population** of ``K`` neurons (``K = expansion * out``, ten times the upper area's
size by default): a *fixed* random ``B`` carries it from the upper area to the intermediate
neurons, a *learned* ``R`` from there to the lower area. With ``W`` of shape ``(out, in)``
(``y = W x``), ``B`` of shape ``(out, K)`` and ``R`` of shape ``(K, in)``:

.. math::
    \delta_r = B^\top \delta_{out} \quad (\text{intermediate population}), \qquad
    \delta_{in} = R^\top \delta_r = (B R)^\top \delta_{out},

    \Delta W = -\eta\,(\delta_{out} x^\top + \lambda W), \qquad
    \Delta R = -\eta\,(\delta_r x^\top + \lambda R)
             = -\eta\,(B^\top \delta_{out} x^\top + \lambda R),

``B`` never changes. ``R`` is updated like a forward weight from its presynaptic activity ``x``
(the lower area, which it receives as a forward collateral) and its postsynaptic error ``delta_r``
(Li Ji-An & Benna's PFA update; in their code ``grad R = (delta_out B)^T x``). With weight decay
on both, :math:`\Delta(R - B^\top W) = -\eta\lambda (R - B^\top W)`, so ``R`` converges to
``B^T W`` and the effective feedback to :math:`B R \to B B^\top W \approx W`, because the
``K >> out`` random rows of ``B`` are nearly orthogonal with :math:`B B^\top \approx I`
(entries of ``B`` have variance ``1/K``): ``W`` is aligned with a *product* of two feedback
matrices, and no synapse has a reciprocal partner. Their recipe uses weight decay ``5e-3`` in the
first epoch and ``1e-4`` afterwards (``Train(weight_decay=5e-3, weight_decay_milestones=(1,),
weight_decay_gamma=0.02)``), SGD with momentum 0.9 and expansion ratio 10.

For a conv projection ``W`` is ``(out, in, k, k)``, ``R`` a ``(K, in, k, k)`` kernel with ``W``'s
stride and padding and ``B`` a 1x1 convolution ``(out, K)``; every formula above holds with the
products read as convolutions.

**Effective feedback and cost.** :meth:`effective_feedback` returns the product ``B R`` (``W``'s
shape), which the probes compare with ``W`` (``feedback_angle`` is the paper's *path alignment*,
``feedback_norm / weight_norm`` its *path norm ratio*). ``R``'s pseudo-gradient is computed as
``B^T (delta_out^T x) = B^T G`` from the weight gradient ``G`` the backward computes anyway --
the same value as ``(B^T delta_out) x^T`` by associativity, without materialising the
intermediate population's activity. Extra arithmetic per backward, compared with feedback
alignment: ``out*K*in*k^2`` multiply-adds for ``B^T G``, plus the error path: the product
``B R`` (``out*K*in*k^2``), or, for a dense projection when it is cheaper
(``N (out + in) < out * in`` for a batch of ``N``), the two matrices applied in sequence to the
error (``N*K*(out + in)``; :meth:`error_through`). For a conv projection the product is always
the cheaper one (applying ``B`` then ``R`` would cost a factor ``N * H * W`` more).

Options (``feedback(..., rule="product_fa", expansion=10, ...)``):

* ``expansion`` (default 10) or ``size`` (``K`` itself; default 0: ``expansion * out``).
* ``b_init``: ``"random"`` (default; ``B_ij ~ U(-sqrt(3/K), sqrt(3/K))``, variance ``1/K``, the
  reference code's Xavier draw), ``"orthogonal"`` (orthonormal rows, ``B B^T = I`` exactly) or
  ``"identity"`` (``K = out``, ``B = I``: Kolen-Pollack). **PFA-o** as the authors define it
  (their ``expand_ratio: "ortho"``) is ``b_init="orthogonal", expansion=1``: a *square* random
  orthogonal ``B`` (``K = out``), with ``R`` and the forward weights drawn Xavier-uniform (a
  circuit declared with ``init="xavier_uniform"``); with the default expansion 10 the orthogonal
  option is a PFA variant of our own, not their PFA-o.
* ``intermediate``: the intermediate population's kind, ``"Units"`` (default, unconstrained),
  ``"E"``, ``"I"`` or ``"EI"`` (a fraction ``inhibitory``, default 0.5, of inhibitory neurons).
  Under Dale's law each intermediate neuron's outgoing synapses (a row of ``R``) share its sign:
  ``R = s |V|`` with ``V`` the learned tensor, pseudo-gradient ``s sign(V) g_R``. Sign-constrained
  rows keep ``R``'s part of ``B^T W`` with their sign; since ``E[b (b^T w)_+] = E[b b^T] w / 2``
  the product stays aligned with ``W`` in expectation.
* ``gain`` (default ``None``: ``sqrt(2)`` under He-normal): ``R_ij ~ N(0, gain^2 / fan_in)``
  (sign-folded for E/I), so ``B R`` starts at feedback alignment's scale. Under a circuit's
  ``init="xavier_uniform"`` ``R`` is drawn Xavier-uniform with its own fans (``fan_in = in k^2``,
  ``fan_out = K k^2``), as the reference code draws it (:mod:`biofa.rules.initializers`).

**Under Dale's law in the forward pathway, PFA does not align** (a limitation of the rule, not
of its implementation here; the paper's networks are unconstrained). ``R`` accumulates
``B^T`` times the *gradient*, but a sign-constrained ``W = s|V|`` cannot follow the gradient past
zero: an entry the gradient keeps pushing towards the forbidden sign stays at zero (``|V|``
reflects), while ``R``'s copy of it keeps growing until the decay balances it, at
``-B^T G / lambda``. The product ``B R`` then tracks the *unconstrained* weights the gradient
asks for, not ``W``. Kolen-Pollack has the same problem with an unconstrained ``B`` and fixes it by
giving ``B`` the columns' signs (each ``B_ij`` mirrors one ``W_ij``); PFA has no such fix, since
no entry of ``R`` corresponds to one entry of ``W``. Measured (``circuits/kp_vs_fa.py``, MNIST,
2 epochs, 3 seeds): with ``Units`` populations PFA reaches 98.8 +- 0.1 % (backprop 98.8 +- 0.2,
path alignment 23 degrees); with E/I populations 96.2 +- 0.8 % (backprop 98.3 +- 0.2, feedback
alignment 96.9 +- 0.6) and 69 degrees; on Fashion-MNIST 90.0 +- 0.2 % (21 degrees) against
77.1 +- 4.1 % (74 degrees); an unconstrained Kolen-Pollack mirror
(``signs="free"``) fails the same way on the E/I net (digits: 63 and 96 % where the
sign-mirrored one reaches 97 and 98 %). A constant larger decay does not rescue it.

The intermediate population is visible in the compiled circuit (``group.feedback["B"]``,
``group.feedback["R"]``, ``K = R.shape[0]``) and in the outputs: per projection ``pfa_b_norm``
(``||B||_F``) and ``pfa_r_norm`` (``||R_p||_F``, the projection's columns of ``R``), next to
``feedback_angle`` / ``feedback_norm`` of the product.

*Sources.* The update rules and the recipe are taken from the authors' reference implementation
(github.com/jil095/product_feedback_alignment: ``biotorch/autograd/tfa`` for the backward and
``R``'s gradient, ``layers/tfa_constructor`` for the initialisation of ``B`` and ``R``, the
``exp_configs`` for expansion ratio, optimiser and weight-decay schedule); the paper's own equation
numbers could not be checked here (its full text was not available to us).

Li Ji-An & Benna, M. K. (2024), *Deep learning without weight symmetry* (Product Feedback
Alignment), arXiv:2405.20594.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from biofa.kinds import DenseOp
from biofa.rules._base import (
    CustomErrorPath,
    Feedback,
    FeedbackContext,
    FeedbackRule,
    LocalSignals,
    Probes,
    RuleMetric,
)
from biofa.rules.initializers import draw
from biofa.rules.registry import register

KINDS = ("Units", "E", "I", "EI")
B_INITS = ("random", "orthogonal", "identity")


def intermediate_signs(size: int, kind: str, inhibitory: float) -> Tensor:
    """``(K,)`` signs of the intermediate neurons: +1 E, -1 I (E first), 0 for ``Units``."""
    if kind == "Units":
        return torch.zeros(size)
    n_inh = {"E": 0, "I": size, "EI": round(inhibitory * size)}[kind]
    return torch.cat([torch.ones(size - n_inh), -torch.ones(n_inh)])


@register
class ProductFeedbackAlignment(FeedbackRule, CustomErrorPath, Probes):
    """PFA: error goes back through a fixed B into an intermediate population, then a learned R."""

    name = "product_fa"
    metrics = (
        RuleMetric(
            "pfa_b_norm", "Frobenius norm of PFA's fixed B (upper area to intermediate population)"
        ),
        RuleMetric(
            "pfa_r_norm",
            "Frobenius norm of PFA's learned R (intermediate population to this projection's "
            "source)",
        ),
    )
    defaults = {
        "expansion": 10,
        "size": 0,
        "b_init": "random",
        "intermediate": "Units",
        "inhibitory": 0.5,
        "gain": None,
    }

    @classmethod
    def check_options(cls, options: dict[str, Any], where: str) -> None:
        super().check_options(options, where)
        for key in ("expansion", "size"):
            value = options.get(key, cls.defaults[key])
            if not isinstance(value, int) or value < (1 if key == "expansion" else 0):
                raise ValueError(
                    f"{where}: {key}={value!r} for rule 'product_fa' must be an int "
                    f">= {1 if key == 'expansion' else 0}"
                )
        for key, allowed in (("b_init", B_INITS), ("intermediate", KINDS)):
            value = options.get(key, cls.defaults[key])
            if value not in allowed:
                raise ValueError(
                    f"{where}: {key}={value!r} for rule 'product_fa' is not one of "
                    f"{', '.join(allowed)}"
                )
        inh = options.get("inhibitory", 0.5)
        if not isinstance(inh, int | float) or not 0 < inh < 1:
            raise ValueError(f"{where}: inhibitory={inh!r} for rule 'product_fa' must be in (0, 1)")

    def size(self, out: int) -> int:
        """``K``, the intermediate population's size for an upper area of ``out`` units."""
        if self.options["b_init"] == "identity":
            return out
        return self.options["size"] or self.options["expansion"] * out

    def init_feedback(
        self, weight: Tensor, generator: torch.Generator, context: FeedbackContext
    ) -> dict[str, Feedback]:
        out = weight.shape[0]
        k = self.size(out)
        kind = self.options["b_init"]
        if kind == "identity":
            b = torch.eye(out)
        elif kind == "orthogonal":
            if k < out:
                raise ValueError(
                    f"rule 'product_fa': b_init='orthogonal' needs an intermediate "
                    f"population at least as large as the upper area ({k} < {out})"
                )
            q, r = torch.linalg.qr(torch.randn(k, out, generator=generator))
            b = (q * torch.sign(torch.diagonal(r))).t().contiguous()  # (out, K), B B^T = I
        else:
            bound = math.sqrt(3.0 / k)
            b = (torch.rand(out, k, generator=generator) * 2.0 - 1.0) * bound
        receptive = context.fan_in // weight.shape[1]  # k * k for a conv kernel, 1 for dense
        r = draw(context.init, (k, *weight.shape[1:]), context.fan_in, k * receptive, generator,
                 self.options["gain"])  # fmt: skip
        signs = intermediate_signs(k, self.options["intermediate"], self.options["inhibitory"])
        like = {"device": weight.device, "dtype": weight.dtype}
        fb = {"B": Feedback(b.to(**like), learned=False)}
        if self.options["intermediate"] == "Units":
            fb["R"] = Feedback(r.to(**like), learned=True)
        else:
            fb["R"] = Feedback(r.abs().to(**like), learned=True)  # R_eff = s |R|
            fb["r_sign"] = Feedback(signs.to(**like), learned=False)
        return fb

    # -- the two matrices ------------------------------------------------------------------
    @staticmethod
    def _r(fb: dict[str, Tensor]) -> Tensor:
        """The effective ``R`` (``(K, in[, k, k])``): ``s |V|`` under Dale's law."""
        r = fb["R"]
        if "r_sign" not in fb:
            return r
        return r.abs() * fb["r_sign"].view(-1, *([1] * (r.dim() - 1)))

    def effective_feedback(self, weight: Tensor, fb: dict[str, Tensor]) -> Tensor:
        r = self._r(fb)
        b = fb["B"].to(r.dtype)
        return (b @ r.reshape(r.shape[0], -1)).view(weight.shape)

    def error_through(self, grad_output, weight, fb, op, input_shape) -> Tensor | None:
        if not isinstance(op, DenseOp):
            return None
        n, (out, inp), k = grad_output.shape[0], weight.shape, fb["B"].shape[1]
        if n * k * (out + inp) >= out * k * inp:
            return None
        dtype = grad_output.dtype
        return (grad_output @ fb["B"].to(dtype)) @ self._r(fb).to(dtype)

    def feedback_grads(self, local: LocalSignals, fb: dict[str, Tensor]) -> dict[str, Tensor]:
        g = local.weight_grad
        r = fb["R"]
        g_r = (fb["B"].to(g.dtype).t() @ g.reshape(g.shape[0], -1)).view(r.shape)
        if "r_sign" in fb:
            sign = fb["r_sign"].view(-1, *([1] * (r.dim() - 1))).to(g.dtype)
            g_r = g_r * sign * torch.sign(r.detach()).to(g.dtype)
        return {"R": g_r}

    def probe(
        self, weight: Tensor, fb: dict[str, Tensor], start: int, stop: int
    ) -> dict[str, Tensor]:
        r = self._r(fb)
        return {
            "pfa_b_norm": _norm(fb["B"]),
            "pfa_r_norm": _norm(r[:, start:stop]),
        }


def _norm(t: Tensor) -> Tensor:
    """Frobenius norm in float64 (float32 on ``mps``), as :func:`biofa.measure.metrics` takes it."""
    dtype = torch.float32 if t.device.type == "mps" else torch.float64
    return torch.linalg.vector_norm(t.detach().reshape(-1).to(dtype))
