"""Mean-field signal propagation in wide random networks, and the born-dead probability of
deep narrow ReLU networks. numpy only.

**Setting.** A fully connected net h_{l+1} = W_{l+1} f(h_l) + b_{l+1}, weights iid with
variance σ_w²/fan_in, biases iid with variance σ_b². In the wide limit every pre-activation of
layer l is Gaussian, h ~ N(0, q_l), with the *length map*

    q_{l+1} = σ_w² · E_{h~N(0,q_l)}[f(h)²] + σ_b²

whose fixed point is q*. Back-propagated signals δ_l = ∂L/∂h_l obey

    E‖δ_l‖² = σ_w² · E[f'(h_l)²] · E‖δ_{l+1}‖²,    χ₁ = σ_w² · E_{h~N(0,q*)}[f'(h)²]

so at the fixed point each layer multiplies the gradient norm by √χ₁ (Poole et al. 2016;
Schoenholz et al. 2017). χ₁ is also the slope of the correlation map at c = 1:

- χ₁ < 1 — **ordered** phase: nearby inputs converge to the same representation and gradients
  vanish, ‖δ_l‖² ∝ exp(−(L−l)/ξ);
- χ₁ > 1 — **chaotic** phase: nearby inputs decorrelate and gradients explode, ∝ exp(+(L−l)/ξ);
- χ₁ = 1 — **critical** (edge of chaos): gradients keep their size across depth.

The depth scale ξ = 1/|ln χ₁| is the number of layers over which the *squared* gradient norm
changes by a factor e (the norm by e over 2ξ layers); ξ = ∞ at criticality.

Gaussian expectations are computed by Gauss–Legendre quadrature on each half-line
[−12, 0] and [0, 12] in units of the standard deviation: kinks at 0 (ReLU, ELU, leaky ReLU)
sit on an endpoint, so the rule stays exact to ~1e-13 for them; the Gaussian mass beyond
12σ (< 1e-32) is dropped.

The activation is a catalog name (looked up in :mod:`gradsight.activations` on first use) or
any object with numpy-capable ``act(x)`` and ``act.derivative(x)``.

>>> round(chi1("relu", weight_var=2.0, bias_var=0.0), 12)
1.0
>>> round(chi1("tanh", weight_var=1.0, bias_var=0.0), 9)
1.0
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

# the one non-numpy import: the error family, a leaf module (difflib only). Catalog names are
# resolved lazily in _resolve, so importing theory never imports torch.
from gradsight.errors import GradsightError

__all__ = [
    "MeanField",
    "gaussian_expectation",
    "length_map",
    "q_star",
    "q_sequence",
    "chi1",
    "mean_field",
    "gradient_profile",
    "saturation_fraction",
    "born_dead_probability",
    "born_dead_monte_carlo",
    "BornDeadEstimate",
]

_CUTOFF = 12.0  # integrate z ∈ [−12, 12] standard deviations
_N_NODES = 200  # Gauss–Legendre nodes per half-line


def _error(message: str) -> GradsightError:
    return GradsightError(message)


def _resolve(activation: Any) -> Any:
    """A catalog activation from its name, or the given object if it has f and f'."""
    if isinstance(activation, str):
        from gradsight.activations import activation as catalog_activation

        activation = catalog_activation(activation)
    elif not (callable(activation) and hasattr(activation, "derivative")):
        raise _error(
            f"activation must be a catalog name or an object with act(x) and act.derivative(x), "
            f"got {activation!r}"
        )
    if getattr(activation, "is_gated", False):
        raise _error(
            f"mean-field theory here is for elementwise activations; {getattr(activation, 'name', activation)!r} "
            "is gated (f(a)·b of two pre-activations)"
        )
    return activation


def _name(activation: Any) -> str:
    return (
        activation if isinstance(activation, str) else str(getattr(activation, "name", activation))
    )


def _check_variances(weight_var: float, bias_var: float) -> None:
    if not (
        weight_var > 0 and bias_var >= 0 and math.isfinite(weight_var) and math.isfinite(bias_var)
    ):
        raise _error(
            f"need weight_var > 0 and bias_var >= 0 (finite); got weight_var={weight_var!r}, "
            f"bias_var={bias_var!r}"
        )


_NODES_CACHE: dict[int, tuple[np.ndarray, np.ndarray]] = {}


def _nodes(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Standard-normal quadrature: points z and weights w with Σ w·g(z) ≈ E[g(Z)], Z ~ N(0, 1)."""
    if n not in _NODES_CACHE:
        x, w = np.polynomial.legendre.leggauss(n)  # on [−1, 1]
        half_z = (x + 1.0) * (_CUTOFF / 2.0)  # on [0, 12]
        half_w = w * (_CUTOFF / 2.0) * np.exp(-0.5 * half_z**2) / math.sqrt(2.0 * math.pi)
        z = np.concatenate([-half_z[::-1], half_z])
        wz = np.concatenate([half_w[::-1], half_w])
        _NODES_CACHE[n] = (z, wz)
    return _NODES_CACHE[n]


def gaussian_expectation(g: Any, q: float, n: int = _N_NODES) -> float:
    """E[g(h)] for h ~ N(0, q), by Gauss–Legendre quadrature on each half-line (q ≥ 0).

    >>> round(gaussian_expectation(lambda h: h**2, 3.0), 12)
    3.0
    """
    if q < 0 or not math.isfinite(q):
        raise _error(f"variance q must be finite and >= 0, got {q!r}")
    z, w = _nodes(n)
    values = np.asarray(g(math.sqrt(q) * z), dtype=np.float64)
    return float(np.dot(w, values))


def length_map(activation: Any, q: float, weight_var: float, bias_var: float) -> float:
    """One step of the length map: σ_w² · E_{h~N(0,q)}[f(h)²] + σ_b²."""
    act = _resolve(activation)
    return weight_var * gaussian_expectation(lambda h: np.asarray(act(h)) ** 2, q) + bias_var


def q_sequence(
    activation: Any, q1: float, depth: int, weight_var: float, bias_var: float
) -> np.ndarray:
    """Pre-activation variances q_1 … q_depth of ``depth`` hidden layers, starting from q_1.

    q_1 is the first layer's pre-activation variance: σ_w²·mean(x²) + σ_b² for input x.
    Returns shape (depth,).
    """
    _check_variances(weight_var, bias_var)
    act = _resolve(activation)
    qs = [float(q1)]
    for _ in range(depth - 1):
        qs.append(length_map(act, qs[-1], weight_var, bias_var))
    return np.asarray(qs)


def q_star(
    activation: Any,
    weight_var: float,
    bias_var: float,
    q0: float = 1.0,
    tol: float = 1e-13,
    max_iter: int = 5_000,
) -> float:
    """The fixed point q* of the length map reached from ``q0``.

    - ``inf`` when q grows without bound (e.g. ReLU with σ_w² > 2);
    - ``q0`` when the map is the identity (ReLU at σ_w² = 2, σ_b² = 0: every q is fixed);
    - ``0.0`` when σ_b² = 0, f(0) = 0 and the map lies below the diagonal on (0, q0]: the
      signal decays to zero (tanh with σ_w² ≤ 1, ReLU with σ_w² < 2). Iterating would need
      millions of steps on the critical line (tanh at σ_w² = 1: q_l ≈ 1/(2l)), so this case is
      decided by scanning map(q) − q on a log grid instead;
    - otherwise the limit of q ← map(q), to relative tolerance ``tol``; ``inf`` if q is still
      rising after ``max_iter`` steps (slow divergence, e.g. leaky ReLU at σ_w² = 2).
    """
    _check_variances(weight_var, bias_var)
    act = _resolve(activation)
    q0 = float(q0)
    first = length_map(act, q0, weight_var, bias_var)
    if abs(first - q0) <= 1e-14 * max(1.0, q0):
        return q0
    f0 = float(np.asarray(act(np.zeros(1)), dtype=np.float64)[0])
    if bias_var == 0.0 and f0 == 0.0 and first < q0:
        grid = np.geomspace(1e-12, q0, 200)
        below = [length_map(act, q, weight_var, bias_var) < q for q in grid]
        if all(below):
            return 0.0
    q, rising = q0, False
    for _ in range(max_iter):
        nxt = length_map(act, q, weight_var, bias_var)
        if not math.isfinite(nxt) or nxt > 1e200:
            return math.inf
        if abs(nxt - q) <= tol * max(1.0, abs(q)):
            return nxt
        rising = nxt > q
        q = nxt
    return math.inf if rising else q


def _chi_at(act: Any, q: float, weight_var: float) -> float:
    return weight_var * gaussian_expectation(lambda h: np.asarray(act.derivative(h)) ** 2, q)


def chi1(activation: Any, weight_var: float, bias_var: float, q0: float = 1.0) -> float:
    """χ₁ = σ_w² · E_{h~N(0,q*)}[f'(h)²] at the fixed point q* of the length map.

    √χ₁ is the per-layer gradient-norm factor. For ReLU χ₁ = σ_w²/2 at every q;
    for tanh at σ_b² = 0, q* = 0 when σ_w² ≤ 1 and χ₁ = σ_w² there.
    """
    act = _resolve(activation)
    return _chi_at(act, _evaluation_q(q_star(act, weight_var, bias_var, q0)), weight_var)


def _evaluation_q(q: float) -> float:
    """Where to evaluate E[f'(h)²] for a fixed point q*: q* itself, its q → 0 limit for q* = 0
    (so that ReLU keeps E[f'²] = 1/2 rather than f'(0)² = 0), a large q for q* = ∞ (the
    large-q limit; exact at any q for positively homogeneous f such as ReLU)."""
    if q == 0.0:
        return 1e-12
    if not math.isfinite(q):
        return 1e8
    return q


@dataclass(frozen=True)
class MeanField:
    """Mean-field predictions for one (activation, σ_w², σ_b²)."""

    activation: str  # activation name
    weight_var: float  # σ_w²
    bias_var: float  # σ_b²
    q_star: float  # fixed point of the length map (inf if it diverges)
    chi1: float  # σ_w² E[f'(h)²] at q*
    grad_factor: float  # √χ₁: per-layer multiplier of the gradient norm
    depth_scale: float  # ξ = 1/|ln χ₁| layers (inf at χ₁ = 1)
    phase: str  # "ordered" (χ₁ < 1), "critical" (|χ₁ − 1| < 1e-9), "chaotic" (χ₁ > 1)

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def mean_field(
    activation: Any, weight_var: float, bias_var: float = 0.0, q0: float = 1.0
) -> MeanField:
    """q*, χ₁, √χ₁, ξ and the phase for one setting.

    >>> mf = mean_field("relu", 2.0, 0.0); (mf.chi1, mf.phase)
    (1.0, 'critical')
    """
    act = _resolve(activation)
    q = q_star(act, weight_var, bias_var, q0)
    c = _chi_at(act, _evaluation_q(q), weight_var)
    if abs(c - 1.0) < 1e-9:
        c_out, phase, xi = round(c, 12), "critical", math.inf
    else:
        c_out, phase, xi = (
            c,
            ("ordered" if c < 1 else "chaotic"),
            1.0 / abs(math.log(c)) if c > 0 else 0.0,
        )
    return MeanField(
        _name(activation), float(weight_var), float(bias_var), q, c_out, math.sqrt(c_out), xi, phase
    )


def _expect_many(g: Any, qs: np.ndarray, n: int = _N_NODES) -> np.ndarray:
    """E[g(h)] for h ~ N(0, q) for every q in ``qs`` at once. Shape (K,) -> (K,)."""
    z, w = _nodes(n)
    h = np.sqrt(np.maximum(qs, 0.0))[:, None] * z[None, :]  # (K, 2n)
    return np.asarray(g(h), dtype=np.float64) @ w  # (K,)


def gradient_profile(
    activation: Any,
    depth: int,
    weight_var: float,
    bias_var: float = 0.0,
    q1: float | np.ndarray | None = None,
) -> np.ndarray:
    """Predicted ‖δ_l‖ / ‖δ_depth‖ for hidden layers l = 1 … depth (δ_l = ∂L/∂h_l).

    With ``q1=None`` every layer sits at the fixed point: ratio_l = χ₁^{(depth−l)/2}.
    With ``q1`` (the first layer's pre-activation variance) the variances q_l follow the length
    map and ratio_l = Π_{k=l}^{depth−1} √(σ_w² E[f'(h_k)²]), h_k ~ N(0, q_k).
    ``q1`` may be an array of K starting variances (one per input sample): then the result has
    shape (K, depth). Otherwise shape (depth,); the last entry is 1.
    """
    if depth < 1:
        raise _error(f"depth must be >= 1, got {depth!r}")
    _check_variances(weight_var, bias_var)
    act = _resolve(activation)
    if q1 is None:
        c = chi1(act, weight_var, bias_var)
        return np.sqrt(c) ** (depth - 1 - np.arange(depth, dtype=np.float64))
    q = np.atleast_1d(np.asarray(q1, dtype=np.float64))  # (K,)
    if np.any(q < 0) or not np.all(np.isfinite(q)):
        raise _error(f"q1 must be finite and >= 0, got {q1!r}")
    log_factor = np.zeros((len(q), depth - 1))  # (K, depth−1): ½ ln χ at layers 1 … depth−1
    for layer in range(depth - 1):
        chi = weight_var * _expect_many(lambda h: np.asarray(act.derivative(h)) ** 2, q)
        log_factor[:, layer] = 0.5 * np.log(chi)
        q = weight_var * _expect_many(lambda h: np.asarray(act(h)) ** 2, q) + bias_var
    # ratio_l = Π_{k≥l} √χ_k: reverse cumulative sum of logs
    tail = np.concatenate(
        [np.cumsum(log_factor[:, ::-1], axis=1)[:, ::-1], np.zeros((len(log_factor), 1))], axis=1
    )
    out = np.exp(tail)  # (K, depth)
    return out if np.ndim(q1) else out[0]


def saturation_fraction(
    activation: Any, q: float, rel: float = 0.01, derivative_max: float | None = None
) -> float:
    """P_{h~N(0,q)}[ |f'(h)| < rel · max|f'| ] — the expected fraction of saturated units.

    ``max|f'|`` is the activation's ``derivative_bound`` when it has one (sigmoid 0.25, tanh 1),
    else ``derivative_max``, else the maximum on a grid. The saturated set is found on a fine
    grid, its edges refined by bisection, and its Gaussian mass summed with erf. For sigmoid
    at rel = 0.01 the set is |h| > 5.99; for tanh |h| > 2.99.
    """
    act = _resolve(activation)
    if q <= 0:
        return float(
            abs(float(np.asarray(act.derivative(np.zeros(1)))[0])) < rel * (derivative_max or 1.0)
        )
    s = math.sqrt(q)
    grid = np.linspace(-_CUTOFF * s, _CUTOFF * s, 24001)
    d = np.abs(np.asarray(act.derivative(grid), dtype=np.float64))
    bound = derivative_max or getattr(act, "derivative_bound", None) or float(d.max())
    thr = rel * float(bound)
    sat = d < thr

    # Gaussian CDF of h: Φ(h/s)
    def cdf(h: float) -> float:
        return 0.5 * (1.0 + math.erf(h / (s * math.sqrt(2.0))))

    def crossing(i: int) -> float:
        # bisection on |f'(h)| − thr inside (grid[i], grid[i+1]): exact for steps (ReLU's kink)
        lo, hi = float(grid[i]), float(grid[i + 1])
        for _ in range(60):
            mid = 0.5 * (lo + hi)
            sat_mid = (
                abs(float(np.asarray(act.derivative(np.array([mid])), dtype=np.float64)[0])) < thr
            )
            if sat_mid == sat[i]:
                lo = mid
            else:
                hi = mid
        return 0.5 * (lo + hi)

    # saturated intervals between sign changes of (sat[i] != sat[i+1]); open ends are tails
    edges = [crossing(int(i)) for i in np.nonzero(sat[:-1] != sat[1:])[0]]
    bounds = ([-math.inf] if sat[0] else []) + edges + ([math.inf] if sat[-1] else [])
    mass = 0.0
    for lo, hi in zip(bounds[0::2], bounds[1::2], strict=True):
        mass += (1.0 if hi == math.inf else cdf(hi)) - (0.0 if lo == -math.inf else cdf(lo))
    return float(min(max(mass, 0.0), 1.0))


# --------------------------------------------------------------------------------------------
# Born dead: Lu, Shin, Su & Karniadakis (2019), "Dying ReLU and Initialization"
# --------------------------------------------------------------------------------------------


def born_dead_probability(depth: int | np.ndarray, width: int | np.ndarray) -> np.ndarray | float:
    """P(a fixed input x ≠ 0 is dead at initialization) = 1 − (1 − 2^{−width})^{depth}.

    The event: some hidden layer of the ReLU net outputs the zero vector for x. Setting:
    ``depth`` hidden layers of ``width`` units, zero biases, weights iid from any continuous
    distribution symmetric about 0. Given a nonzero input to a layer, its ``width``
    pre-activations w_i·z are independent and each is ≤ 0 with probability 1/2, so the layer is
    all-zero with probability 2^{−width}; once a layer is zero every later layer is zero
    (no bias), so death is absorbing and the probability above is exact. Then the output is
    the constant output bias and no gradient reaches any hidden weight through x.

    Lu et al. (2019) prove that a deep ReLU net with symmetric initialisation is born dead in
    probability as depth → ∞ at fixed width; this formula is that mechanism for one input, and
    an upper bound on the stricter event "dead for every input of a domain" (which
    :func:`born_dead_monte_carlo` also estimates).

    >>> round(born_dead_probability(10, 2), 6)
    0.943686
    """
    depth_a, width_a = np.asarray(depth, dtype=np.float64), np.asarray(width, dtype=np.float64)
    if np.any(depth_a < 1) or np.any(width_a < 1):
        raise _error(f"depth and width must be >= 1; got depth={depth!r}, width={width!r}")
    p = -np.expm1(depth_a * np.log1p(-(2.0**-width_a)))
    return float(p) if p.ndim == 0 else p


@dataclass(frozen=True)
class BornDeadEstimate:
    """Monte Carlo estimates of dying at initialization, per depth 1 … max_depth."""

    width: int  # hidden units per layer
    trials: int  # networks sampled
    n_inputs: int  # inputs per network for the domain event
    point_dead: np.ndarray  # (max_depth,) fraction of nets whose first input is dead by that depth
    domain_dead: np.ndarray  # (max_depth,) fraction of nets dead for all n_inputs inputs
    point_stderr: np.ndarray  # (max_depth,) binomial standard error of point_dead


def born_dead_monte_carlo(
    max_depth: int,
    width: int,
    trials: int = 2000,
    n_inputs: int = 64,
    in_features: int = 2,
    seed: int = 0,
) -> BornDeadEstimate:
    """Sample ``trials`` zero-bias ReLU nets with N(0, 2/fan_in) weights (He; any symmetric law
    gives the same death events) and record, for every depth ≤ ``max_depth``, whether

    - the first input x₀ has met an all-zero hidden layer (compare :func:`born_dead_probability`),
    - every one of ``n_inputs`` inputs drawn uniformly from [−1, 1]^in_features has (the net is
      a constant function on that sample: born dead in the sense of Lu et al.).
    """
    if max_depth < 1 or width < 1 or trials < 1 or n_inputs < 1 or in_features < 1:
        raise _error(
            f"need max_depth, width, trials, n_inputs, in_features >= 1; got {max_depth!r}, "
            f"{width!r}, {trials!r}, {n_inputs!r}, {in_features!r}"
        )
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1.0, 1.0, size=(trials, n_inputs, in_features))  # (T, B, D)
    z = x
    point = np.zeros(max_depth)
    domain = np.zeros(max_depth)
    fan_in = in_features
    for layer in range(max_depth):
        w = rng.normal(0.0, math.sqrt(2.0 / fan_in), size=(trials, fan_in, width))  # (T, in, N)
        z = np.maximum(np.matmul(z, w), 0.0)  # (T, B, N)
        alive = np.any(z > 0, axis=2)  # (T, B)
        point[layer] = np.mean(~alive[:, 0])
        domain[layer] = np.mean(~np.any(alive, axis=1))
        fan_in = width
    stderr = np.sqrt(point * (1 - point) / trials)
    return BornDeadEstimate(width, trials, n_inputs, point, domain, stderr)
