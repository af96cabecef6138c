"""Step buffering: a logged step's observations, from the site hooks to device tensors.

A site hook only notes what it saw; at the end of the forward one warm loop turns the notes
into per-unit derivative sums (one reduction per site) and registers the gradient hooks; the
gradient norms arrive during the backward. The step's Observations then wait for the host
(flush.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from gradsight.monitor.records import ParamStats
from gradsight.monitor.sites import Site
from gradsight.monitor.stats import Observation

HOLD_GRADS = 1 << 22  # site-output gradient elements held until the end of the backward, at most
NORM_IN_HOOK_DEVICES = ("cpu",)  # site gradients normed as they pass, not held (see _watch_grad)


@dataclass(slots=True)
class Deferred:
    """What :meth:`StepBuffer._settle` needs of an observation noted in the forward."""

    site: Site
    read: torch.Tensor  # the tensor f' reads: the input x or the output y
    version: int  # its _version when the site ran
    node: Any  # y's autograd node, where dLoss/dy arrives (None without gradients)
    nr: int  # y.output_nr: y's place among the node's outputs
    numel: int  # y.numel()


@dataclass
class ReadyStep:
    """A logged step done on the device, waiting for the host (flush.py)."""

    step: int
    observations: list[Observation]
    params: list[ParamStats]


class StepBuffer:
    """The Monitor's part that buffers a logged step's observations (a mixin)."""

    def _observe(
        self,
        site: Site,
        x: torch.Tensor | None,
        y: Any,
        pre: tuple[torch.Tensor, int, torch.Tensor | None] | None = None,
    ) -> None:
        if not isinstance(y, torch.Tensor) or not y.is_floating_point():
            return
        self._busy += 1  # our own torch calls must not look like the user's activations
        try:
            if site.units is None:
                self._layout(site, y)
            if self._discovering:
                if site not in self._disc_order:
                    self._disc_order.append(site)
                self._link_incoming(site, x if x is not None else y)
            if pre is None and not site.eager:
                self._defer(site, x, y)  # settled at the end of the forward
                return
            D, n, S = pre if pre is not None else site.unit_sums(x, y)  # (C,), (), ()
            site.units = site.unit_count(y.shape)
            ob = Observation(site, D, n, numel=y.numel(), n_units=site.units, saturated=S)
            if y.requires_grad:
                y.register_hook(ob.on_grad)
            self._obs.append(ob)
        finally:
            self._busy -= 1

    def _defer(self, site: Site, x: torch.Tensor | None, y: torch.Tensor) -> None:
        """Keep what the site's observation needs until :meth:`_settle`, in its place in
        forward order in ``_obs``. Only the tensor f' reads is held (with
        its version, to tell whether it was changed in place before the end of the forward)
        and y's autograd node, where the gradient of y as the site made it arrives -- the
        same tensors autograd keeps for the activation's backward: ReLU, sigmoid and tanh
        save their output, GELU and SiLU their input. The other one is let go (holding it
        costs memory and time: benchmarks/README.md)."""
        read = site.reads(x, y)
        if read is None:
            raise ValueError(f"site {site.name!r}: no input to take the derivative of")
        node = y.grad_fn if y.requires_grad else None
        self._obs.append(Deferred(site, read, read._version, node, y.output_nr, y.numel()))

    def _settle(self) -> None:
        """Per-unit derivative sums of the observations made since the last call, in one warm
        loop: done here, at the end of the forward, instead of in each site's hook, where every
        torch call pays the cold-path cost of running right after the model's kernels. The
        tensors read are alive until the backward anyway; one changed in place since its site
        ran (its version moved) is not measured this step, and the site is measured in its
        hook from then on. The output's gradient hook is registered here too (:meth:`_watch_grad`)."""
        obs, dropped = self._obs, False
        if self._settled == len(obs):
            return
        self._sites_fired = True
        with self._internal():
            for i in range(self._settled, len(obs)):
                entry = obs[i]
                if type(entry) is Observation:
                    continue  # measured in its hook
                site, read = entry.site, entry.read
                try:
                    if read._version == entry.version:
                        D, n, S = site.unit_sums(read, read)  # f' reads one tensor: x or y
                        site.units = units = D.shape[0]
                        ob = obs[i] = Observation(site, D, n, numel=entry.numel, n_units=units, saturated=S)
                        if entry.node is not None:
                            self._watch_grad(ob, entry.node, entry.nr, entry.numel, read.device.type)
                        continue
                except Exception as exc:  # noqa: BLE001
                    self.log.record(f"site {site.name}", exc)
                site.eager = True
                obs[i], dropped = None, True
        if dropped:
            obs[:] = [ob for ob in obs if ob is not None]
        self._settled = len(obs)

    def _take_observations(self) -> list[Observation]:
        """This step's observations, settled, and an empty list for the next step's."""
        self._settle()
        obs = list(self._obs)
        self._obs.clear()
        self._settled = 0
        return obs

    def _watch_grad(self, ob: Observation, node: Any, nr: int, numel: int, device: str) -> None:
        """dLoss/dy for the observation, from a pre-hook on y's autograd node ``node`` (y is
        its output ``nr``; a node pre-hook costs less to register than a tensor hook).

        On the devices in NORM_IN_HOOK_DEVICES (the CPU) the hook takes the norm as the
        gradient passes, while it is still in the cache, and autograd frees the gradient as it
        would without us. Elsewhere the hook only appends the node's gradient tuple to
        ``ob.grads`` -- a built-in method, no Python bytecode in the backward -- and the norms
        of all held gradients are taken in one ``_foreach_norm`` at the end of the backward
        (:meth:`_read_held_grads`), up to HOLD_GRADS held elements. On the CPU holding loses:
        the held gradients are memory the backward cannot reuse (measured in
        benchmarks/README.md)."""
        ob.nr = nr
        if device in NORM_IN_HOOK_DEVICES or self._grad_numel + numel > HOLD_GRADS:
            node.register_prehook(ob.on_node_grads)
            return
        node.register_prehook(ob.grads.append)
        self._grad_obs.append(ob)
        self._grad_numel += numel

    def _read_held_grads(self, release: bool = False) -> None:
        """The norms of the gradients held since the last call, in one ``_foreach_norm``;
        then the gradients are let go (a second backward through the same graph holds new
        ones: their norms join the first in quadrature). ``release``: the step is over."""
        held = [(ob, g[ob.nr]) for ob in self._grad_obs for g in ob.grads if g[ob.nr] is not None]
        if held:
            try:
                with torch.no_grad():
                    norms = torch._foreach_norm([g for _, g in held])
                for (ob, _), norm in zip(held, norms, strict=True):
                    ob.gnorms.append(norm)
            except Exception:  # noqa: BLE001 - one by one: a failure is told per site
                for ob, g in held:
                    ob.on_grad(g)
        for ob in self._grad_obs:
            ob.grads.clear()
        if release:
            self._grad_obs = []
            self._grad_numel = 0
