r"""
Statistics of the cross-correlation peak: overlap normalisation, lag uncertainty, significance.

Pure array kernels (NumPy or CuPy, one code path) used by the block kernels of
`sunpy_timelag.lags` on one block of pixels at a time: series are ``(N, pixels)``
columns, already centred on their global means (:math:`a' = a - \bar a`), and
:math:`S(k) = \sum_t a'(t)\, b'(t + k)` is the unnormalised cross-correlation at the
integer lag :math:`k`, summed over the :math:`n_k = N - |k|` samples that the two series
overlap at that lag.

Overlap normalisation
---------------------
The Pearson correlation of the overlapping samples,

.. math::

    r(k) = \frac{S(k) - s_a(k)\, s_b(k) / n_k}{\sqrt{q_a(k)\, q_b(k)}}, \qquad
    s_x(k) = \sum_{t \in O_x(k)} x'(t), \quad
    q_x(k) = \sum_{t \in O_x(k)} x'(t)^2 - \frac{s_x(k)^2}{n_k},

with :math:`O_a(k) = [\max(0, -k), N - \max(0, k))` and :math:`O_b(k) = O_a(-k)` the
samples of each series that lag :math:`k` overlaps. The sums over :math:`O_x(k)` are
differences of two cumulative sums, so all lags cost :math:`O(N)` per pixel on top
of the transform that gives :math:`S`.

Lag uncertainty
---------------
Noise moves the maximum of the correlation. The refined lag
:math:`\hat k = k_0 + \delta` with :math:`\delta = -D / (2\kappa)`,
:math:`D = S(k_0 + 1) - S(k_0 - 1)` and :math:`\kappa = S(k_0 - 1) - 2S(k_0) + S(k_0 + 1)`
(the vertex of the parabola through the peak), errs to first order in the noise
:math:`E` of :math:`S` by :math:`-(D_E + 2\delta\,\kappa_E) / (2\kappa)`. Writing
:math:`e_a, e_b` for the noise of the two series and summing by parts, with :math:`b`
(up to scale :math:`\beta` and offset) a copy of :math:`a` delayed by
:math:`k_0 + \delta`,

.. math::

    D_E + 2\delta\,\kappa_E \simeq -\sum_t g(t)\, \epsilon(t) + 2\delta \sum_t h(t)\, e_b(t + k_0),
    \qquad \epsilon(t) = e_b(t + k_0) - \beta\, e_a(t),

with :math:`g(t) = a'(t + 1) - a'(t - 1)` and :math:`h(t) = a'(t + 1) - 2a'(t) + a'(t - 1)`.
The residual :math:`\epsilon` is estimated by the least-squares fit, over the overlap, of

.. math::

    b'(t + k_0) \approx \beta_0 + \beta\, a'(t) + \beta_1\, g(t)
        + \beta_2\, \tfrac13\,[a'(t+2) + a'(t-2) - a'(t+1) - a'(t-1)],

a scaled copy of :math:`a` shifted by a fraction of a sample and slightly smoothed or
sharpened (the last term is a second derivative whose noise is independent of
:math:`e_a(t)`, so that the fit does not absorb the noise of :math:`a`), so that
neither the fractional part of the lag nor a different sampling of the two channels
is mistaken for noise. Each sum is given the heteroscedasticity- and
lag-one-autocorrelation-consistent variance (Newey & West 1987) of
:math:`\sum_t w(t)\,\hat\epsilon(t)`,

.. math::

    V_w = \sum_t w(t)^2\, \hat\epsilon(t)^2
        + 2 \sum_t w(t)\, w(t + 1)\, \hat\epsilon(t)\, \hat\epsilon(t + 1)

(at least half its first term), which follows noise that varies with the signal
(photon noise) and noise made correlated between neighbouring samples by the linear
interpolation onto the common time grid. The one-sigma uncertainty of the lag is

.. math::

    \sigma_\tau = \Delta t\, \frac{\sqrt{V_g + 4\delta^2 V_h}}{2\, |\kappa|}

(for the ``"overlap"`` normalisation :math:`\kappa` is the curvature of :math:`r(k)`
times its normaliser). It describes the error that noise causes, to first order: it
holds while that error is small compared with the width of the correlation peak, and
underestimates the scatter of weak, broad peaks (peak correlations below about 0.8).
It does not include a bias of the estimator (see the ``"overlap"`` normalisation) nor
differences between the channels' light curves other than noise (those enlarge
:math:`\hat\epsilon`, so the uncertainty is then conservative); :math:`V_h` uses the noise
of both series where only that of :math:`b` enters, which errs on the safe side too.

Significance
------------
Under the null hypothesis the two series are unrelated, each with its own
autocorrelation :math:`\rho_a, \rho_b`. The correlation of :math:`n` overlapping samples
then has the variance :math:`V / n` (Bartlett 1935) with

.. math::

    V = \sum_m \rho_a(m)\, \rho_b(m)
      = \frac{\sum_f |\hat a_f|^2 |\hat b_f|^2}{L\, \lVert a' \rVert^2 \lVert b' \rVert^2},

from the transforms of the pass (Parseval, length :math:`L`), i.e. it behaves like a
correlation of :math:`n_\mathrm{eff} = n / V` independent samples (Bretherton et al.
1999). At lag :math:`k` the peak correlation :math:`r_k` (the overlap Pearson
correlation, or :math:`C_{AB}\, N / n_k` for the global normalisation) is mapped to a
standard normal deviate with Fisher's transform,
:math:`u_k = \operatorname{artanh}(r_k)\, \sqrt{n_k / V - 3}`. The chance that the
maximum over the searched lags reaches the observed peak is then bounded by the
chance that the first lag does, plus the expected number of lags at which the null
correlation crosses it upwards (Rice's formula for a sampled Gaussian process),

.. math::

    p = Q(u_{k_1}) + \sum_k P(Z_{k-1} \le u_k < Z_k), \qquad
    \operatorname{corr}(Z_{k-1}, Z_k) = \rho_1 = \frac{\sum_f |\hat a_f|^2 |\hat b_f|^2 \cos\omega_f}
        {\sum_f |\hat a_f|^2 |\hat b_f|^2},

where :math:`\rho_1` is the correlation between neighbouring lags of the null
cross-correlation (whose spectrum is the product of the two series' spectra) and
:math:`Q` the normal tail. The upcrossing probability
:math:`\int_u^\infty \varphi(y)\, \Phi\!\left((u - \rho_1 y)/\sqrt{1 - \rho_1^2}\right) dy`
is evaluated by Gauss-Laguerre quadrature and the sum over lags by the trapezoidal
rule on at most 33 lags (its terms vary smoothly with the lag). The bound is tight
when :math:`p` is small and errs on the safe side otherwise; :math:`p` is clipped to 1.
"""
import math

import numpy as np
from numpy.polynomial.laguerre import laggauss

from .backend import array_module, special_module

__all__ = ["prefix_sums", "overlap_moments", "overlap_correlation", "lag_uncertainty", "peak_significance"]

#: Gauss-Laguerre quadrature of the upcrossing integral.
_LAGUERRE_NODES, _LAGUERRE_WEIGHTS = laggauss(12)
#: Largest number of lags at which the upcrossing sum is evaluated.
_SIGNIFICANCE_NODES = 33
#: Fisher's transform: the variance of artanh(r) of n independent samples is 1 / (n - 3).
_FISHER_OFFSET = 3.0


def prefix_sums(centred):
    """
    Cumulative sums of ``centred`` and of its square along axis 0, each with a leading row of zeros.

    Parameters
    ----------
    centred : array
        ``(N, pixels)``.

    Returns
    -------
    (array, array)
        ``(N + 1, pixels)`` float64 each: row ``m`` holds the sum over the first ``m`` samples.
    """
    xp = array_module(centred)
    zeros = xp.zeros((1,) + centred.shape[1:])
    squares = xp.square(centred, dtype=np.float64)
    return (xp.concatenate([zeros, xp.cumsum(centred, axis=0, dtype=np.float64)]),
            xp.concatenate([zeros, xp.cumsum(squares, axis=0)]))


def overlap_moments(sums, lags, n_times, first):
    r"""
    Sum :math:`s_x(k)` and sum of squared deviations :math:`q_x(k)` of the samples that each lag overlaps.

    Parameters
    ----------
    sums : (array, array)
        Output of `prefix_sums` for the series.
    lags : numpy.ndarray
        Integer lags :math:`k`.
    n_times : int
        :math:`N`.
    first : bool
        `True` for series A (samples :math:`t`), `False` for B (samples :math:`t + k`).

    Returns
    -------
    (array, array)
        ``(len(lags), pixels)`` each.
    """
    xp = array_module(sums[0])
    start = -lags if first else lags
    low, high = np.maximum(0, start), n_times - np.maximum(0, -start)
    low, high, count = xp.asarray(low), xp.asarray(high), xp.asarray((high - low)[:, None].astype(np.float64))
    total, squares = (s[high] - s[low] for s in sums)
    return total, squares - total**2 / count


def overlap_correlation(corr, moments_a, moments_b, lags, n_times, norms, dtype):
    """
    The Pearson correlation :math:`r(k)` of the overlapping samples, from :math:`S(k)` and the overlap moments.

    Parameters
    ----------
    corr : array
        ``(len(lags), pixels)``: :math:`S(k)`.
    moments_a, moments_b : (array, array)
        `overlap_moments` of A and B.
    lags : numpy.ndarray
    n_times : int
    norms : array
        ``(pixels,)``: :math:`\\lVert a'\\rVert \\lVert b'\\rVert`.
    dtype : numpy.dtype
        Precision of ``corr``: overlaps whose variance is within its rounding error of
        zero (a constant stretch) give NaN.

    Returns
    -------
    (array, array)
        :math:`r(k)` ``(len(lags), pixels)`` (NaN where undefined) and
        :math:`\\sqrt{q_a q_b}`, its normaliser.
    """
    xp = array_module(corr)
    count = xp.asarray((n_times - np.abs(lags))[:, None].astype(np.float64))
    (total_a, spread_a), (total_b, spread_b) = moments_a, moments_b
    scale = xp.sqrt(xp.clip(spread_a, 0, None) * xp.clip(spread_b, 0, None))
    defined = scale > 8 * np.finfo(dtype).eps * norms
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (corr - total_a * total_b / count) / scale
    return xp.where(defined, r, np.nan), scale


def lag_uncertainty(a, b, shift, offset, bend):
    r"""
    One-sigma uncertainty (in samples) of the refined lag, per pixel; see the module docstring.

    Parameters
    ----------
    a, b : array
        ``(N, pixels)`` centred series A and B (float64).
    shift : array
        ``(pixels,)`` integer lag :math:`k_0` of the discrete peak.
    offset : array
        ``(pixels,)`` refinement :math:`\delta` of the lag (0 without refinement).
    bend : array
        ``(pixels,)`` curvature :math:`\kappa` of the unnormalised correlation at the peak.

    Returns
    -------
    array
        ``(pixels,)``; NaN where the peak is not a maximum (:math:`\kappa \ge 0`) or the
        overlap is too short for the fit.
    """
    xp = array_module(a)
    n_times = a.shape[0]
    time = xp.arange(n_times)[:, None]
    inside = (time > 1 + xp.maximum(0, -shift)) & (time < n_times - 2 - xp.maximum(0, shift))
    weight = inside.astype(np.float64)
    later = xp.take_along_axis(b, xp.clip(time + shift, 0, n_times - 1), axis=0) * weight
    slope, bend_a, wide_bend = xp.zeros_like(a), xp.zeros_like(a), xp.zeros_like(a)
    slope[1:-1] = a[2:] - a[:-2]
    bend_a[1:-1] = a[2:] - 2 * a[1:-1] + a[:-2]
    wide_bend[2:-2] = (a[4:] + a[:-4] - a[3:-1] - a[1:-3]) / 3   # ~ a'', its noise independent of a(t)
    regressors = xp.stack([weight, a * weight, slope * weight, wide_bend * weight])   # (4, N, pixels)
    gram = xp.einsum("itp,jtp->pij", regressors, regressors)
    scale = xp.sqrt(xp.diagonal(gram, axis1=1, axis2=2)) + np.finfo(np.float64).tiny
    gram = gram / (scale[:, :, None] * scale[:, None, :]) + 1e-10 * xp.eye(4)
    moment = xp.einsum("itp,tp->pi", regressors, later) / scale
    coefficients = xp.linalg.solve(gram, moment[..., None])[..., 0] / scale
    residual = later - xp.einsum("itp,pi->tp", regressors, coefficients)
    variance = _newey_west(slope * residual * weight) + 4 * offset**2 * _newey_west(bend_a * residual * weight)
    usable = (bend < 0) & (inside.sum(axis=0) > 8)
    with np.errstate(invalid="ignore", divide="ignore"):
        sigma = xp.sqrt(variance) / (2 * xp.abs(bend))
    return xp.where(usable, sigma, np.nan)


def _newey_west(score):
    """
    Variance of the sum of ``score`` (N, pixels) over axis 0, with the lag-one autocovariances.

    Floored at half the sum of squares, the value of noise whose neighbours are correlated by
    :math:`-1/4`; a negative lag-one term larger than that is the noise of the estimate.
    """
    xp = array_module(score)
    squares = xp.square(score).sum(axis=0)
    return xp.maximum(squares + 2 * (score[1:] * score[:-1]).sum(axis=0), squares / 2)


def peak_significance(power_a, power_b, n_fft, norms_squared, peak, lags, n_times, normalization):
    r"""
    Chance probability of a peak correlation at least ``peak`` between unrelated series; see the module docstring.

    Parameters
    ----------
    power_a, power_b : array
        ``(n_fft // 2 + 1, pixels)`` :math:`|\hat a_f|^2, |\hat b_f|^2` of the centred series,
        zero-padded to ``n_fft``.
    n_fft : int
        Length :math:`L` of the transforms (at least :math:`N`).
    norms_squared : array
        ``(pixels,)``: :math:`\lVert a'\rVert^2 \lVert b'\rVert^2`.
    peak : array
        ``(pixels,)`` observed maximum of the correlation over ``lags``.
    lags : numpy.ndarray
        The searched integer lags.
    n_times : int
        :math:`N`.
    normalization : {"global", "overlap"}
        How ``peak`` was normalised.

    Returns
    -------
    array
        ``(pixels,)`` probabilities in [0, 1].
    """
    xp = array_module(peak)
    special = special_module(xp)
    n_freq = power_a.shape[0]
    weights = np.full(n_freq, 2.0)   # rfft: every frequency but 0 and n_fft / 2 stands for two
    weights[0] = 1.0
    if n_fft % 2 == 0:
        weights[-1] = 1.0
    product = xp.asarray(weights[:, None]) * power_a * power_b
    total = product.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        bartlett = total / (n_fft * norms_squared)   # V = sum_m rho_a(m) rho_b(m)
        cosine = xp.asarray(np.cos(2 * np.pi * np.arange(n_freq) / n_fft)[:, None])
        rho = xp.clip((cosine * product).sum(axis=0) / total, -0.999, 0.999)

    n_nodes = min(_SIGNIFICANCE_NODES, lags.size)
    nodes = np.linspace(lags[0], lags[-1], n_nodes)
    count = (n_times - np.abs(nodes))[:, None]
    if n_nodes > 1:
        steps = np.full(n_nodes, (lags.size - 1) / (n_nodes - 1))
        steps[[0, -1]] /= 2
    else:
        steps = np.zeros(1)
    correlation = peak * xp.asarray(n_times / count) if normalization == "global" else peak[None]
    effective = xp.asarray(count) / bartlett
    with np.errstate(invalid="ignore", divide="ignore"):
        deviate = xp.arctanh(xp.clip(correlation, -1 + 1e-15, 1 - 1e-15)) * xp.sqrt(
            xp.clip(effective - _FISHER_OFFSET, 1e-6, None))
    first = 0.5 * special.erfc(deviate[0] / math.sqrt(2))
    crossings = _upcrossing(xp.clip(deviate, 1e-3, None), rho, special)
    p = first + (xp.asarray(steps[:, None]) * crossings).sum(axis=0)
    p = xp.where(peak > 0, xp.clip(p, 0, 1), 1.0)
    return xp.where(xp.isfinite(peak) & xp.isfinite(bartlett), p, np.nan)


def _upcrossing(level, rho, special):
    r"""
    :math:`P(Z_0 \le u < Z_1)` for standard normal :math:`Z_0, Z_1` of correlation :math:`\rho`, per element.

    With :math:`y = u + s/u`,
    :math:`\int_u^\infty \varphi(y)\,\Phi(\cdot)\,dy = \frac{\varphi(u)}{u}\int_0^\infty e^{-s}
    e^{-s^2/2u^2}\,\Phi\!\left(\frac{u - \rho y}{\sqrt{1-\rho^2}}\right) ds`, by Gauss-Laguerre quadrature.
    """
    xp = array_module(level)
    root = xp.sqrt(1 - rho**2)
    total = xp.zeros_like(level)
    for node, weight in zip(_LAGUERRE_NODES, _LAGUERRE_WEIGHTS, strict=True):
        y = level + node / level
        below = 0.5 * special.erfc(-(level - rho * y) / (root * math.sqrt(2)))
        total += weight * xp.exp(-0.5 * (node / level) ** 2) * below
    return xp.exp(-0.5 * level**2) / (math.sqrt(2 * math.pi) * level) * total
