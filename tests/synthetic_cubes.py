"""In-memory `TimelagCube` s of a synthetic observation, without writing and reading thousands of files."""
import astropy.units as u
import sunpy.map
from astropy.io import fits
from ndcube import NDCube

from sunpy_timelag import TimelagCube
from sunpy_timelag.io.wcs import timelag_wcs


def rate_cube(observation, channel, rate):
    """A cube of ``rate`` (DN/s, ``(n_time, ny, nx)``) at the frame times of ``channel``, on its first frame's WCS."""
    first = sunpy.map.Map(observation.data[channel][0], fits.Header.fromstring(observation.header_texts[channel][0]))
    wcs = timelag_wcs(first.wcs, first.coordinate_frame, observation.times[channel])
    return TimelagCube.from_ndcube(NDCube(rate, wcs=wcs, unit=u.DN / u.s), wavelength=channel * u.AA,
                                   exposure_time=1 * u.s)


def observed_cubes(observation):
    """The observed frames of every channel, divided by their exposure times (as ``normalize_exposure`` does)."""
    return [rate_cube(observation, c, observation.data[c] / observation.exposure_time[c].to_value(u.s)[:, None, None])
            for c in observation.channels]


def noise_free_cubes(observation):
    """The same observation without noise: the model count rates at the frames' times."""
    return [rate_cube(observation, c, observation.model_rate(c)) for c in observation.channels]
