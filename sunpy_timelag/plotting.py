r"""
Figures of time-lag results fit for a paper: the grid of channel pairs and the lag histograms.

What is drawn follows the literature's reading of the maps (Viall & Klimchuk 2012, 2016; Barnes
et al. 2019): a lag means something only where the two channels correlate, so pixels whose peak
correlation is below ``min_correlation`` (default `MIN_CORRELATION`) — or, where the maps carry a
significance, whose chance probability exceeds ``significance_level`` — are masked; the colour
scale of the lags is symmetric about zero and spans a robust percentile of the lags kept, not the
whole lag window; and every figure states the sign convention: for the pair (A, B), a positive lag
means B peaks after A, which, with the hotter channel first, is cooling plasma.
"""
import astropy.units as u
import numpy as np

__all__ = ["MIN_CORRELATION", "SIGNIFICANCE_LEVEL", "reliable_pixels", "lag_limit", "plot_pair_grid",
           "plot_lag_histograms"]

#: Peak correlation below which a lag is masked in figures (and histograms) by default.
MIN_CORRELATION = 0.2
#: Chance probability above which a lag is masked when the maps carry a significance.
SIGNIFICANCE_LEVEL = 0.05
#: The sign convention, written on every figure.
SIGN_CONVENTION = "positive lag: B peaks after A (hot to cool: cooling)"


def reliable_pixels(maps, min_correlation=MIN_CORRELATION, significance_level=SIGNIFICANCE_LEVEL):
    """
    The pixels whose lag can be trusted: finite, correlated and (where known) significant.

    Parameters
    ----------
    maps : `~sunpy_timelag.PairMaps`
        The maps of one channel pair.
    min_correlation : float, optional
        Smallest peak correlation kept.
    significance_level : float, optional
        Largest chance probability kept, where ``maps`` has a ``significance`` map.

    Returns
    -------
    numpy.ndarray
        Boolean, the shape of the maps.
    """
    lag = maps.timelag.data
    keep = np.isfinite(lag) & (maps.correlation.data >= min_correlation)
    significance = getattr(maps, "significance", None)
    if significance is not None:
        keep &= significance.data <= significance_level
    return keep


def lag_limit(results, percentile=98.0, **criteria):
    """
    A symmetric colour limit for lag maps: the ``percentile`` of :math:`|\\tau|` over the reliable pixels.

    Parameters
    ----------
    results : dict of `~sunpy_timelag.PairMaps`
        As `~sunpy_timelag.timelag_maps` returns them.
    percentile : float, optional
    **criteria
        ``min_correlation`` and ``significance_level`` of `reliable_pixels`.

    Returns
    -------
    `~astropy.units.Quantity`
        In seconds; the cadence of the first pair if no pixel is reliable.
    """
    lags = np.concatenate([np.abs(maps.timelag.data[reliable_pixels(maps, **criteria)]) for maps in results.values()])
    if lags.size == 0:
        return next(iter(results.values())).timelag.meta["cadence"] * u.s
    return np.percentile(lags, percentile) * u.s


def plot_pair_grid(results, *, figure=None, limit=None, min_correlation=MIN_CORRELATION,
                   significance_level=SIGNIFICANCE_LEVEL, cmap="RdBu_r"):
    """
    The lag maps of many channel pairs as a triangle: row A, column B, one panel per pair (A, B).

    Unreliable pixels (see `reliable_pixels`) are masked; all panels share one symmetric colour
    scale (default `lag_limit`); the title gives the observation window and the sign convention.

    Parameters
    ----------
    results : dict of `~sunpy_timelag.PairMaps`
        As `~sunpy_timelag.timelag_maps` returns them, keyed by ``(A, B)``.
    figure : `matplotlib.figure.Figure`, optional
        Drawn into; default a new figure sized for print.
    limit : `~astropy.units.Quantity`, optional
        The colour scale spans ``[-limit, limit]``.
    min_correlation, significance_level : float, optional
        See `reliable_pixels`.
    cmap : str, optional

    Returns
    -------
    `matplotlib.figure.Figure`
    """
    import matplotlib.pyplot as plt
    from matplotlib.colors import Normalize

    rows, columns = list(dict.fromkeys(a for a, _ in results)), list(dict.fromkeys(b for _, b in results))
    criteria = {"min_correlation": min_correlation, "significance_level": significance_level}
    limit = (lag_limit(results, **criteria) if limit is None else limit).to_value(u.s)
    figure = figure or plt.figure(figsize=(2.6 * len(columns) + 1, 2.4 * len(rows) + 1), dpi=150)
    for (a, b), maps in results.items():
        ax = figure.add_subplot(len(rows), len(columns), rows.index(a) * len(columns) + columns.index(b) + 1,
                                projection=maps.timelag)
        lag = maps.timelag
        shown = type(lag)(lag.data, lag.meta, mask=~reliable_pixels(maps, **criteria))
        image = shown.plot(axes=ax, cmap=cmap, norm=Normalize(vmin=-limit, vmax=limit), title=f"{a}-{b}")
        for coord in ax.coords:
            coord.set_ticklabel_visible(False)
            coord.set_axislabel("")
    figure.colorbar(image, ax=figure.axes, shrink=0.6, label="time lag of B behind A [s]")
    figure.suptitle(f"{_window(results)}: time lags, row A, column B\n{SIGN_CONVENTION}; "
                    f"masked: {_criteria_text(results, **criteria)}")
    return figure


def plot_lag_histograms(results, *, axes=None, bins=40, limit=None, min_correlation=MIN_CORRELATION,
                        significance_level=SIGNIFICANCE_LEVEL):
    """
    The distribution of lags over the reliable pixels, one histogram per pair, weighted by correlation.

    Parameters
    ----------
    results : dict of `~sunpy_timelag.PairMaps`
    axes : `matplotlib.axes.Axes`, optional
    bins : int, optional
    limit : `~astropy.units.Quantity`, optional
        The histograms span ``[-limit, limit]``; default `lag_limit`.
    min_correlation, significance_level : float, optional
        See `reliable_pixels`.

    Returns
    -------
    `matplotlib.axes.Axes`
    """
    import matplotlib.pyplot as plt

    criteria = {"min_correlation": min_correlation, "significance_level": significance_level}
    limit = (lag_limit(results, **criteria) if limit is None else limit).to_value(u.s)
    if axes is None:
        axes = plt.figure(figsize=(7, 4.5), dpi=150).add_subplot()
    edges = np.linspace(-limit, limit, bins + 1)
    for (a, b), maps in results.items():
        keep = reliable_pixels(maps, **criteria)
        axes.hist(maps.timelag.data[keep], bins=edges, weights=maps.correlation.data[keep], histtype="step",
                  label=f"{a}-{b} ({keep.sum()} px)")
    axes.axvline(0, color="0.5", lw=0.8)
    axes.set_xlabel("time lag of B behind A [s]")
    axes.set_ylabel("pixels, weighted by peak correlation")
    axes.set_title(f"{_window(results)}\n{SIGN_CONVENTION}", fontsize="medium")
    axes.legend(fontsize="small", ncols=2)
    return axes


def _window(results):
    meta = next(iter(results.values())).timelag.meta
    return f"{meta.get('telescop', '')} {meta['date-obs'][:19]} to {meta['date-end'][:19]}".strip()


def _criteria_text(results, min_correlation, significance_level):
    has_significance = getattr(next(iter(results.values())), "significance", None) is not None
    text = f"peak correlation < {min_correlation:g}"
    return text + (f" or chance probability > {significance_level:g}" if has_significance else "")
