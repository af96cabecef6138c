"""Site discovery: the first forward with gradients sees every module and every op.

Pre- and post-hooks on every module (and the functional mode over the whole forward) name the
activation sites in forward order, link each to the weight layer that feeds it, find the
"owners" (modules whose own forward calls an activation function), the entry layers the
non-finite check reads, and whether the forward draws random numbers. Under torch.compile the
discovery is one extra eager forward that leaves no trace (compiled.py).
"""

from __future__ import annotations

import functools
from collections import defaultdict
from typing import Any

import torch
from torch import nn

from gradsight.monitor import compiled, distributed, nonfinite
from gradsight.monitor._util import float_tensors, guarded, named_modules, no_compile
from gradsight.monitor.sites import CONV_LIKE_MODULES, CONV_LIKE_OPS, PASS_THROUGH, Site

_LINEAR_LIKE_OPS = frozenset({"linear", "matmul", "bmm", "addmm", "layer_norm", "embedding", "mm"})
# op names (substrings) that draw random numbers: a forward with any of them is replayed from
# the RNG state captured before it; a forward with none needs no capture
_RANDOM_OPS = ("dropout", "rand", "bernoulli", "normal", "uniform", "multinomial", "exponential",
               "geometric", "cauchy", "log_normal", "poisson", "rrelu", "scaled_dot_product_attention",
               "multi_head_attention")  # fmt: skip
_RANDOM_MODULES = (nn.modules.dropout._DropoutNd, nn.RReLU)
# layers whose bias gradient is the output gradient summed over all but the unit dimension
_BIAS_SUMS = (nn.Linear, nn.modules.conv._ConvNd, nn.LayerNorm, nn.GroupNorm, nn.modules.batchnorm._BatchNorm)


class Discovery:
    """The Monitor's part that finds and names the sites (a mixin: state lives on the Monitor)."""

    def _new_site(self, name: str, act: Any, kind: str, **kw: Any) -> Site:
        site = Site(index=len(self.sites), name=name, act=act, kind=kind, **kw)
        self.sites.append(site)
        self._sites_by_name[name] = site
        return site

    def _module_site(self, module: nn.Module) -> Site | None:
        site = self._site_of_module.get(module)
        if site is None and module in self._module_acts and module not in self._excluded:
            name, act = self._module_acts[module]
            site = self._sites_by_name.get(name)
            if site is None:
                site = self._new_site(
                    name, act, "module", module=module, inplace=bool(getattr(module, "inplace", False))
                )
            self._site_of_module[module] = site
        return site

    def _layout(self, site: Site, t: torch.Tensor) -> None:
        """Decide once, at the site's first sight, whether its units are channels."""
        if site.units is None:
            site.channel_layout = self._hint_channel and t.ndim >= 3
            site.units = site.unit_count(t.shape)

    def _link_incoming(self, site: Site, x: torch.Tensor) -> None:
        """Walk from the site's input back to the weight layer that produced it."""
        if site.incoming is not None or not isinstance(x, torch.Tensor):
            return
        chain: list[tuple[str, nn.Module]] = []
        key: int | None = id(x)
        for _ in range(8):
            rec = self._producers.get(key) if key is not None else None
            if rec is None:
                return
            name, mod, key = rec
            chain.append((name, mod))
            if not isinstance(mod, PASS_THROUGH):
                site.incoming = name
                site.chain = chain
                return

    def _on_other_op(self, func: Any) -> None:
        if not self._discovering:
            return
        name = nonfinite.op_name(func)
        if not self._random and any(r in name for r in _RANDOM_OPS):
            self._random = True
        if name in CONV_LIKE_OPS:
            self._hint_channel = True
        elif name in _LINEAR_LIKE_OPS:
            self._hint_channel = False

    def _begin_discovery(self) -> None:
        self._disarm()
        self._discovering = True
        self._disc_order = []
        self._hint_channel = False
        self._random = any(isinstance(m, _RANDOM_MODULES) for m in self.root.modules())
        self._mode.on_other = self._on_other_op
        for name, mod in named_modules(self.root):
            if mod is self.root:
                continue
            self._disc_handles.append(
                mod.register_forward_pre_hook(functools.partial(self._on_disc_pre, name))
            )
            self._disc_handles.append(
                mod.register_forward_hook(functools.partial(self._on_disc_post, name), always_call=True)
            )
        if self.root in self._module_acts:  # the whole model is one activation module
            self._disc_handles.append(self.root.register_forward_pre_hook(self._on_site_pre))
            self._disc_handles.append(
                self.root.register_forward_hook(self._on_site_post_counted, always_call=True)
            )
        self._enter_mode()

    def _end_discovery(self) -> None:
        first = not self._discovered
        self._exit_mode()
        self._mode.on_other = None
        for h in self._disc_handles:
            h.remove()
        self._disc_handles = []
        self._discovering = False
        self._discovered = True
        self._rediscover = False
        self._keep.clear()
        self._producers.clear()
        # forward order: what this forward saw first, then the rest as before
        seen = list(self._disc_order)
        rest = [s for s in self.sites if s not in seen]
        self.sites = seen + rest
        for i, s in enumerate(self.sites):
            s.index = i
        for h in self._entry_handles:
            h.remove()
        self._entry_handles = [m.register_forward_hook(self._on_entry_out) for m in self._hooked_entries]
        distributed.warn_tensor_parallel(self.sites, self.root, self.log)
        if self._logged:
            self._arm()
        if first and self._select.active:  # last: the monitor is complete whatever a warning does
            self._select.warn_unmatched(sorted(self._site_names_seen))

    def _stabilise(self, args: Any, kwargs: Any) -> None:
        """Under torch.compile: discover the sites by one eager forward that leaves no trace,
        then register the one set of hooks kept for the rest of the run, before dynamo traces the
        submodules (see compiled.py). A forward without gradients cannot discover: it waits."""
        fresh = not self._armed
        if not self._discovered:
            if not torch.is_grad_enabled():
                return
            with compiled.side_effect_free(self.root):
                self._begin_discovery()
                try:
                    self.root._call_impl(*args, **kwargs)  # eager; the root's own hooks stay out
                finally:
                    self._obs.clear()  # what the discovery forward saw is not this step's
                    self._settled = 0
                    self._pre_D.clear()
                    self._grad_obs, self._grad_numel = [], 0
                    self._suppress = self._owner_depth = 0
                    self._end_discovery()
        self._arm()
        if fresh and "" in self._owners and self._armed:
            # the root's own owner pre-hook was registered after its pre-hooks were read
            self._on_owner_pre("", self.root, args)

    @no_compile
    @guarded("discovery pre-hook")
    def _on_disc_pre(self, name: str, module: nn.Module, args: Any) -> None:
        if self._replaying:
            return
        self._frames.append((name, defaultdict(int)))
        if module in self._module_acts:
            self._on_site_pre(module, args)

    @no_compile
    @guarded("discovery hook")
    def _on_disc_post(self, name: str, module: nn.Module, args: Any, output: Any) -> None:
        if self._replaying:
            return
        if len(self._frames) > 1:
            self._frames.pop()
        if module in self._module_acts:
            self._on_site_post_counted(module, args, output)
        if output is None:
            return
        if isinstance(module, CONV_LIKE_MODULES):
            self._hint_channel = True
        elif isinstance(module, (nn.Linear, nn.LayerNorm, nn.Embedding)):
            self._hint_channel = False
        outs = float_tensors(output)
        owns = name in self._params.layer_set  # FSDP1's flat parameters too (params.py)
        ins = float_tensors(args)
        if owns or isinstance(module, PASS_THROUGH):
            first_in = ins[0] if ins else None
            for t in outs[:1]:
                self._producers[id(t)] = (name, module, id(first_in) if first_in is not None else None)
                self._keep.append(t)
        if (
            owns
            and not any(t.requires_grad for t in ins)
            and any(t.requires_grad for t in outs)
            and module not in self._entries
        ):
            self._entries.append(module)
            # a backward NaN reaches the entry layer's output gradient and so its parameter
            # gradients: read one .grad at the end of the backward (no hook, no extra
            # interruption of the step) -- the bias of a layer whose bias gradient is the sum
            # of the output gradient (tiny, and any NaN/Inf in the sum shows), else the weight
            # unless it far outsizes the output (embeddings: a hook on the output instead)
            bias = getattr(module, "bias", None)
            weights = [p for p in module.parameters(recurse=False) if p.requires_grad]
            if isinstance(module, _BIAS_SUMS) and isinstance(bias, nn.Parameter) and bias.requires_grad:
                self._entry_params.append(bias)
            elif weights and weights[0].numel() <= max(4 * sum(t.numel() for t in outs), 1 << 18):
                self._entry_params.append(weights[0])
            else:
                self._hooked_entries.append(module)
                self._on_entry_out(module, args, output)  # this step; later steps: its hook
