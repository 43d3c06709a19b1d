"""
==================================================
Which lags to trust, how precise, and when
==================================================

A time-lag map gives a lag in every pixel, but a lag is only worth something where the two
channels really correlate, and only to within the noise. This example takes a synthetic AIA
observation whose true lags are known and shows the options that answer those questions:

* ``normalization="overlap"``, lags without the pull towards zero of the usual definition;
* ``uncertainty=True`` and ``significance=True``, a one-sigma error and a chance probability in
  every pixel, and the recipe that tells delayed, zero-lag and uncorrelated pixels apart;
* the figures of `sunpy_timelag.plotting`: all channel pairs as a triangle, and the distribution of
  the lags of each pair;
* `~sunpy_timelag.windowed_timelag_maps`, lags in sliding windows: they appear in the windows that
  hold the events, and not in the others.
"""
# sphinx_gallery_thumbnail_number = 4

import dataclasses

import astropy.units as u
import matplotlib.pyplot as plt
import numpy as np
import sunpy.map
from matplotlib.colors import ListedColormap
from scipy.ndimage import gaussian_filter1d

from sunpy_timelag import TimelagCube, timelag_maps, windowed_timelag_maps
from sunpy_timelag.data import make_synthetic_observation
from sunpy_timelag.plotting import plot_lag_histograms, plot_pair_grid, reliable_pixels

# %%
# A synthetic observation, with a patch that varies without delay
# ---------------------------------------------------------------
# Two hours of the six coronal channels on a 40 x 40 pixel field, kept in memory (24 s cadence
# to keep the example quick). The loops of the arcade cool through the channels, so every loop
# pixel has a known positive lag for each hot-to-cool pair; the diffuse emission around them is
# steady, so its lags are noise.
#
# Viall & Klimchuk (2016) also find pixels whose channels vary *together*, with no measurable
# delay. We add such a patch above the arcade: its emission flickers at random, by the same
# relative amount in every channel at the same instant (each channel seen at its own times).

observation = make_synthetic_observation(shape=(40, 40), duration=2 * u.h, cadence=24 * u.s)
patch = np.s_[31:38, 4:14]  # pixels (y, x) above the loops
print(f"loop pixels in the patch: {observation.loop_mask[patch].sum()}")

seconds = np.arange(0, 2.1 * 3600)  # a fine time grid, s from the start
brightening = gaussian_filter1d(np.random.default_rng(1).standard_normal(seconds.size), 60)
brightening *= 0.15 / brightening.std()


def flicker(time):
    """The relative brightening of the patch at ``time``, the same in every channel at the same instant."""
    return np.interp((time - observation.times[171][0]).to_value(u.s), seconds, brightening)


def make_cube(channel, data):
    """A cube of one channel from its frames' data (DN) and headers, divided by the exposure times."""
    frames = [sunpy.map.Map(frame, header) for frame, header in zip(data, observation.headers[channel], strict=True)]
    return TimelagCube.from_maps(frames).normalize_exposure()


frames = {}
for channel in observation.channels:
    frames[channel] = observation.data[channel].astype(float)
    frames[channel][(slice(None), *patch)] *= 1 + flicker(observation.times[channel])[:, None, None]
cubes = [make_cube(channel, frames[channel]).persist() for channel in observation.channels]
print(cubes[0])

# %%
# Biased and unbiased lags
# ------------------------
# The usual cross-correlation (``normalization="global"``, as in sunkit-image and Viall &
# Klimchuk 2012) z-scores each light curve over the whole series and divides by :math:`N` at
# every lag: products of the baselines tilt it towards zero lag, so the lag of its peak falls
# short of the truth. ``"overlap"`` correlates only the samples each lag overlaps (a Pearson
# correlation per lag) and has no such tilt. The median error over the loop pixels of every
# pair, against the truth:

bounds = [-1, 1] * u.h
biased = timelag_maps(cubes, lag_bounds=bounds)
results = timelag_maps(cubes, lag_bounds=bounds, normalization="overlap", uncertainty=True, significance=True)
loops = observation.loop_mask

labels, errors = [], {"global": [], "overlap": []}
for pair in results:
    truth = observation.true_timelag(*pair)
    labels.append(f"{pair[0]}-{pair[1]}")
    for name, result in (("global", biased), ("overlap", results)):
        errors[name].append(np.nanmedian((result[pair].timelag.data - truth)[loops]))

fig, ax = plt.subplots(figsize=(10, 3.8))
positions = np.arange(len(labels))
ax.bar(positions - 0.2, errors["global"], 0.4, label='normalization="global"', color="0.6")
ax.bar(positions + 0.2, errors["overlap"], 0.4, label='normalization="overlap"', color="C3")
ax.axhline(0, color="k", lw=0.8)
ax.set_xticks(positions, labels, rotation=45)
ax.set_ylabel("median lag - true lag [s]")
ax.set_title("loop pixels: the global normalisation falls short of the truth, the overlap one does not")
ax.legend()
fig.tight_layout()
plt.show()

# %%
# Uncertainty and significance
# ----------------------------
# With ``uncertainty=True`` every pair has a one-sigma error of its lag, in seconds, and with
# ``significance=True`` the chance probability that unrelated light curves with the same
# autocorrelations correlate this well somewhere within the lag bounds: small values are
# significant. The loops and the flickering patch are significant, the steady background is
# not: its lags are chance. `~sunpy_timelag.plotting.reliable_pixels` keeps the pixels that are
# correlated and significant. At a level of 5 % one pixel in twenty of pure noise passes by
# chance, and here most pixels are noise: we ask for 0.1 %. Masked, the others no longer set the
# colour scales, and the lags of the loops (up to 13 minutes) and the zero lag of the patch stand
# out, each with an error of a second or two.

level = 1e-3
maps = results[211, 171]
unreliable = ~reliable_pixels(maps, significance_level=level)
lag = type(maps.timelag)(maps.timelag.data, maps.timelag.meta, mask=maps.timelag.mask | unreliable)
sigma = type(maps.uncertainty)(maps.uncertainty.data, maps.uncertainty.meta, mask=unreliable)
fig = plt.figure(figsize=(13, 4.2))
for i, (result, label) in enumerate([(lag, "lag [s]"), (sigma, "one sigma [s]"),
                                     (maps.significance, "chance probability")]):
    ax = fig.add_subplot(1, 3, i + 1, projection=result)
    image = result.plot(axes=ax, title=result.measurement)
    fig.colorbar(image, ax=ax, shrink=0.75, label=label)
    for coord in ax.coords:
        coord.set_axislabel("")
fig.tight_layout()
plt.show()

# %%
# The errors are calibrated: the truth lies within one sigma of the unbiased lag in about two
# thirds of the loop pixels, and within two sigma in most of the rest, as for a normal error.

truth = observation.true_timelag(211, 171)
normalised = np.abs(maps.timelag.data - truth)[loops] / maps.uncertainty.data[loops]
print(f"truth within 1 sigma: {np.nanmean(normalised <= 1):.0%}, within 2 sigma: {np.nanmean(normalised <= 2):.0%}")
print(f"loop pixels significant at 5 %: {np.mean(maps.significance.data[loops] < 0.05):.0%}")

# %%
# Delayed, zero-lag and uncorrelated pixels
# -----------------------------------------
# A lag near zero can mean two things: channels that vary together, or no correlation at all.
# The recipe of the :ref:`time-lag guide <timelags-zero-lag>` separates them with the
# significance and the uncertainty (at the level chosen above):

tau, sigma, p = maps.timelag.data, maps.uncertainty.data, maps.significance.data
correlated = p < level                                 # not chance
zero_lag = correlated & (np.abs(tau) <= 2 * sigma)     # correlated, no measurable delay
delayed = correlated & ~zero_lag                       # a measured lag
classes = np.select([delayed, zero_lag], [2, 1], default=0)
print(f"zero-lag pixels in the patch: {zero_lag[patch].mean():.0%}, in the loops: {zero_lag[loops].mean():.0%}")

fig = plt.figure(figsize=(5.5, 4.5))
ax = fig.add_subplot(projection=maps.timelag)
image = ax.imshow(classes, origin="lower", cmap=ListedColormap(["0.85", "C0", "C3"]), vmin=-0.5, vmax=2.5)
ax.set_title("211-171 Å: what the lag means")
ax.set_xlabel("Helioprojective Longitude (Solar-X)")
ax.set_ylabel("Helioprojective Latitude (Solar-Y)")
colorbar = fig.colorbar(image, ax=ax, ticks=[0, 1, 2], shrink=0.8)
colorbar.ax.set_yticklabels(["uncorrelated", "zero lag", "delayed"])
plt.show()

# %%
# All pairs as a triangle, and their lag distributions
# ----------------------------------------------------
# `~sunpy_timelag.plotting.plot_pair_grid` draws the lag maps of every pair, row A and column B,
# on one symmetric colour scale taken from the data, with the pixels that are weakly correlated
# or (here, where the maps have a significance) not significant masked; the title gives the
# observation window and the sign convention.

fig = plot_pair_grid(results, significance_level=level)
plt.show()

# %%
# `~sunpy_timelag.plotting.plot_lag_histograms` gives the distribution of the lags kept, one
# histogram per pair, weighted by the peak correlation (Barnes et al. 2019 read active regions
# this way): the loops' lags grow with the temperature gap between the two channels, and the
# patch adds its zero lags.

hot_to_cool = {pair: results[pair] for pair in [(335, 211), (335, 193), (335, 171), (211, 171), (193, 171)]}
ax = plot_lag_histograms(hot_to_cool, significance_level=level)
plt.show()

# %%
# Lags in sliding windows
# -----------------------
# A map of the whole observation averages over it. `~sunpy_timelag.windowed_timelag_maps` computes
# the maps in windows, each analysed as a whole observation. To see it find the events, let the
# heating of the loops stop after 30 minutes: the model of the observation with the heating
# pulses of later peak times removed (``observation.arcade``), the noise kept. A loop heated at
# :math:`t` still shows in 211 Å about :math:`0.45\,\tau` later, and in 171 Å about
# :math:`0.8\,\tau` later (:math:`\tau` of 20 to 40 minutes): the last pairs of events of the two
# channels end about an hour into the observation, and nothing happens after. Windows of 40
# minutes, every 20 minutes:

heated = observation.arcade
stopped = dataclasses.replace(observation, arcade=dataclasses.replace(
    heated, amplitude=np.where(heated.peak_time < 30 * 60, heated.amplitude, 0)))
quiet_cubes = []
for channel in (211, 171):
    exposure = observation.exposure_time[channel].to_value(u.s)[:, None, None]
    rate = frames[channel] / exposure - observation.model_rate(channel) + stopped.model_rate(channel)
    quiet_cubes.append(make_cube(channel, rate * exposure))

windows = windowed_timelag_maps(quiet_cubes, window=40 * u.min, step=20 * u.min, lag_bounds=[-20, 20] * u.min,
                                normalization="overlap", significance=True)
windowed = windows[211, 171].timelag          # NDCube (window, y, x)
significance = windows[211, 171].significance
centres = windowed.axis_world_coords(0)[0]     # the centres of the windows, as Time
minutes = (centres - observation.times[171][0]).to(u.min)
print(windowed.data.shape, np.round(minutes))

# %%
# In the windows that hold both channels' emission of the same events, the loops have their lags,
# close to the truth and significant; the window that holds only the end of the events keeps them
# in part; in the window after them there is nothing to measure, and the significance says so.

fig = plt.figure(figsize=(13, 3.4))
for w in range(len(minutes)):
    ax = fig.add_subplot(1, len(minutes), w + 1)
    shown = np.where(significance.data[w] < level, windowed.data[w], np.nan)
    image = ax.imshow(shown, origin="lower", cmap="RdBu_r", vmin=-900, vmax=900)
    ax.set_title(f"window centred\nat {minutes[w].value:.0f} min", fontsize="medium")
    ax.set_xticks([])
    ax.set_yticks([])
fig.colorbar(image, ax=fig.axes, shrink=0.9, label="211-171 Å lag [s], significant pixels")
plt.show()

truth = observation.true_timelag(211, 171)[loops]
fig, ax = plt.subplots(figsize=(7, 3.6))
ax.plot(minutes, [np.mean(significance.data[w][loops] < level) for w in range(len(minutes))], "o-",
        label="loop pixels significant")
ax.plot(minutes, [np.mean(np.abs(windowed.data[w][loops] - truth) < 24) for w in range(len(minutes))], "s-",
        label="loop pixels within one cadence (24 s) of the truth")
ax.axvspan(0, 30, color="C1", alpha=0.15, label="heating")
ax.set_xlabel("window centre [min from the start]")
ax.set_ylabel("fraction")
ax.set_ylim(-0.05, 1.05)
ax.legend(fontsize="small")
fig.tight_layout()
plt.show()
