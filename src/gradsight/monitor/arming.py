"""Hook arming: the site hooks of logged steps and the functional-activation mode.

On a logged step every module site gets a forward hook and every owner a pre/post pair that
pushes the TorchFunctionMode while the owner's forward runs; other steps run with no site hook
at all. Under torch.compile one set of hooks
stays for the whole run and acts on logged steps only (compiled.py).
"""

from __future__ import annotations

import contextlib
import functools
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from gradsight.activations import is_inplace_call
from gradsight.monitor._util import guarded, no_compile
from gradsight.monitor.select import hooked_owners
from gradsight.monitor.sites import functional_name


class Arming:
    """The Monitor's part that arms and disarms the site hooks (a mixin)."""

    def _mode_skip(self) -> bool:
        return self._busy > 0 or self._suppress > 0 or self._replaying or not self._measuring()

    @contextlib.contextmanager
    def _internal(self) -> Iterator[None]:
        self._busy += 1
        try:
            yield
        finally:
            self._busy -= 1

    def _measuring(self) -> bool:
        """Whether site hooks measure now: always when they are armed for this step only, on
        logged steps (and the discovery forward) when they stay armed under torch.compile."""
        return not self._stable or self._logged or self._discovering

    def _arm(self) -> None:
        if self._armed or self.closed or self._discovering:
            return
        if self._stable:
            self._arm_stable()
            return
        hooked = hooked_owners(self._owners, self._owners_measured)
        owners = tuple(hooked)
        for module, (path, _) in self._module_acts.items():
            # the pre-hook is needed only to keep the functional mode out of a module site that
            # runs inside an owner, or to measure an in-place input before it is overwritten
            inside_owner = _inside(path, owners)
            if module in self._excluded and not inside_owner:
                continue
            site = self._module_site(module) if bool(getattr(module, "inplace", False)) else None
            overwrites = site is not None and site.out_deriv is None
            if inside_owner or overwrites:
                self._armed.append(module.register_forward_pre_hook(self._on_site_pre))
            self._armed.append(
                module.register_forward_hook(
                    self._on_site_post_counted if inside_owner or overwrites else self._on_site_post,
                    always_call=True,
                )
            )
        self._arm_owners(hooked)

    def _arm_stable(self) -> None:
        """The hooks kept for the whole run under torch.compile (compiled.py): every module site
        gets its pre- and post-hook, every owner its pair; they act on logged steps only."""
        if not self._discovered:
            return
        hooked = hooked_owners(self._owners, self._owners_measured)
        owners = tuple(hooked)
        for module, (path, _) in self._module_acts.items():
            if module in self._excluded and not _inside(path, owners):
                continue
            self._armed.append(module.register_forward_pre_hook(self._on_site_pre))
            self._armed.append(module.register_forward_hook(self._on_site_post_counted, always_call=True))
        self._arm_owners(hooked)

    def _arm_owners(self, hooked: set[str]) -> None:
        """Each owner's pre- and post-hook: they push and pop the functional mode around it."""
        for path in sorted(hooked):
            mod = self._modules.get(path)
            if mod is None:
                continue
            self._armed.append(mod.register_forward_pre_hook(functools.partial(self._on_owner_pre, path)))
            self._armed.append(mod.register_forward_hook(self._on_owner_post, always_call=True))

    def _disarm(self, force: bool = False) -> None:
        if self._stable and not force:
            return  # under torch.compile the hooks never change (compiled.py)
        for h in self._armed:
            h.remove()
        self._armed = []

    @no_compile
    @guarded("activation pre-hook")
    def _on_site_pre(self, module: nn.Module, args: Any) -> None:
        if self._replaying:
            return
        self._suppress += 1
        site = self._module_site(module)
        if (
            self._measuring()
            and site is not None
            and site.inplace
            and site.out_deriv is None
            and not site.act.is_gated
            and torch.is_grad_enabled()
            and args
            and isinstance(args[0], torch.Tensor)
        ):
            with self._internal():  # the input is about to be overwritten: measure it now
                self._layout(site, args[0])
                self._pre_D[module] = site.unit_sums(args[0], args[0])

    @no_compile
    @guarded("activation hook")
    def _on_site_post_counted(self, module: nn.Module, args: Any, output: Any) -> None:
        """The post-hook of a site that has a pre-hook: undo its suppression, then measure."""
        if self._replaying:
            return
        self._suppress = max(self._suppress - 1, 0)
        self._measure_module_site(module, args, output)

    @no_compile
    @guarded("activation hook")
    def _on_site_post(self, module: nn.Module, args: Any, output: Any) -> None:
        if self._replaying:
            return
        self._measure_module_site(module, args, output)

    def _measure_module_site(self, module: nn.Module, args: Any, output: Any) -> None:
        pre = self._pre_D.pop(module, None)
        if output is None or not torch.is_grad_enabled() or not self._measuring():
            return
        site = self._module_site(module)
        if site is None:
            return
        x = args[0] if args and isinstance(args[0], torch.Tensor) and not site.inplace else None
        self._observe(site, x, output, pre)

    @no_compile
    @guarded("owner pre-hook")
    def _on_owner_pre(self, path: str, module: nn.Module, args: Any) -> None:
        if self._replaying:
            return
        self._frames.append((path, defaultdict(int)))
        if self._owner_depth == 0:
            self._enter_mode()
        self._owner_depth += 1

    @no_compile
    @guarded("owner hook")
    def _on_owner_post(self, module: nn.Module, args: Any, output: Any) -> None:
        if self._replaying:
            return
        if len(self._frames) > 1:
            self._frames.pop()
        self._owner_depth = max(self._owner_depth - 1, 0)
        if self._owner_depth == 0:
            self._exit_mode()

    def _enter_mode(self) -> None:
        if not self._mode_active:
            self._mode.__enter__()
            self._mode_active = True

    def _exit_mode(self, force: bool = False) -> None:
        if not self._mode_active:
            return
        from torch.overrides import _get_current_function_mode_stack

        stack = _get_current_function_mode_stack()
        if stack and stack[-1] is self._mode:
            self._mode.__exit__(None, None, None)
            self._mode_active = False
        elif force:
            self._mode_active = False  # someone else popped it; nothing of ours is left

    @no_compile
    def _on_activation_call(self, func: Any, args: Any, kwargs: Any, rec: tuple[Any, Any]) -> Any:
        act, x = rec
        try:
            path, counts = self._frames[-1]
            k = counts[act.name]
            counts[act.name] += 1
            name = functional_name(path, act.name, k)
            if self._discovering:
                self._site_names_seen.add(name)
                self._owners.add(path)
            if not self._select(name):
                return func(*args, **kwargs)
            site = self._sites_by_name.get(name)
            if site is None:
                if not self._discovering and not self._stable:
                    self._rediscover = True
                    return func(*args, **kwargs)
                site = self._new_site(name, act, "functional")  # under torch.compile: as it comes
            if self._discovering:
                self._owners_measured.add(path)
            inplace = is_inplace_call(func, args, kwargs)
            pre = None
            if inplace and site.out_deriv is None and torch.is_grad_enabled():
                with self._internal():
                    self._layout(site, x)
                    pre = site.unit_sums(x, x)
        except Exception as exc:  # noqa: BLE001 - the user's op must still run
            self.log.record("functional site", exc)
            return func(*args, **kwargs)
        out = func(*args, **kwargs)
        if torch.is_grad_enabled():
            try:
                self._observe(site, None if inplace else x, out, pre)
            except Exception as exc:  # noqa: BLE001
                self.log.record("functional site", exc)
        return out


def _inside(path: str, owners: tuple[str, ...]) -> bool:
    """Whether the module at ``path`` runs inside one of the ``owners`` ("" is the root)."""
    return any(o == "" or path.startswith(o + ".") for o in owners)
