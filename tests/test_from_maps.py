"""Cubes from sunpy Maps: the same analysis as from files, whole time series per chunk, maps named by index."""
import astropy.units as u
import dask.array as da
import numpy as np
import pytest
import sunpy.map
from astropy.io import fits
from astropy.time import Time

from sunpy_timelag import TimelagCube, timelag_maps

N_FRAMES, CADENCE, SHAPE, DELAY = 60, 12.0, (6, 8), 60.0  # the 171 pulse peaks 60 s after the 335 one
START = Time("2011-02-15T00:00:00")


def frames(channel, delay):
    """``N_FRAMES`` float32 images (DN, 2 s exposures) of a Gaussian pulse ``delay`` s after 4 min, and headers."""
    seconds = np.arange(N_FRAMES) * CADENCE
    y, x = np.mgrid[: SHAPE[0], : SHAPE[1]]
    pulse = np.exp(-0.5 * ((seconds[:, None, None] - 240 - delay - 2 * x - y) / 40) ** 2)
    images = (2 * (1 + 3 * pulse + 0.01 * np.sin(7 * seconds)[:, None, None])).astype(np.float32)
    base = {"TELESCOP": "SDO/AIA", "INSTRUME": "AIA", "WAVELNTH": channel, "WAVEUNIT": "angstrom",
            "CTYPE1": "HPLN-TAN", "CTYPE2": "HPLT-TAN", "CUNIT1": "arcsec", "CUNIT2": "arcsec",
            "CDELT1": 2.4, "CDELT2": 2.4, "CRPIX1": 4.5, "CRPIX2": 3.5, "CRVAL1": 0.0, "CRVAL2": 0.0,
            "DSUN_OBS": 1.48e11, "HGLN_OBS": 0.0, "HGLT_OBS": 0.0, "EXPTIME": 2.0, "BUNIT": "DN"}
    headers = [fits.Header({**base, "T_OBS": (START + s * u.s).isot, "DATE-OBS": (START + (s - 1) * u.s).isot})
               for s in seconds]
    return images, headers


def maps_of(images, headers, order):
    return [sunpy.map.Map(images[i], headers[i]) for i in order]


@pytest.fixture(scope="module")
def channels():
    return {335: frames(335, 0.0), 171: frames(171, DELAY)}


def test_maps_give_the_lags_of_the_same_files(channels, tmp_path):
    shuffled = np.random.default_rng(3).permutation(N_FRAMES)  # from_maps sorts by time
    from_maps, from_files = [], []
    for channel, (images, headers) in channels.items():
        from_maps.append(TimelagCube.from_maps(maps_of(images, headers, shuffled)).normalize_exposure())
        for i, (image, header) in enumerate(zip(images, headers, strict=True)):
            fits.PrimaryHDU(image, header).writeto(tmp_path / f"{channel}_{i:03d}.fits")
        from_files.append(TimelagCube.from_files(str(tmp_path / f"{channel}_*.fits")).normalize_exposure())
    lags = [timelag_maps(cubes, lag_bounds=[-5, 5] * u.min)[(335, 171)].timelag for cubes in (from_maps, from_files)]
    np.testing.assert_allclose(lags[0].data, lags[1].data, rtol=1e-6)
    np.testing.assert_allclose(lags[0].data, DELAY, atol=2.0)  # the truth, refined below the 12 s cadence
    assert lags[0].unit == u.s


def test_numpy_maps_make_whole_series_chunks(channels):
    images, headers = channels[171]
    order = np.arange(N_FRAMES)[::-1]
    cube = TimelagCube.from_maps(maps_of(images, headers, order))
    assert cube.data.chunks[0] == (N_FRAMES,)  # a few tasks for the analysis, not one per frame
    np.testing.assert_array_equal(cube.data.compute(), images)  # in time order
    assert (cube.time == START + np.arange(N_FRAMES) * CADENCE * u.s).all()
    # frame by frame, as the preparation steps read it
    np.testing.assert_array_equal(cube.to_maps()[7].data, images[7])


def test_dask_maps_stay_lazy_one_chunk_per_frame(channels):
    images, headers = channels[171]
    computed = []

    def frame(i):
        computed.append(i)
        return images[i]

    lazy = [sunpy.map.Map(da.from_delayed(da.core.delayed(frame)(i), SHAPE, np.float32), headers[i])
            for i in range(N_FRAMES)[::-1]]
    cube = TimelagCube.from_maps(lazy)
    assert computed == [] and cube.data.chunks[0] == (1,) * N_FRAMES
    np.testing.assert_array_equal(cube.data.compute(), images)


def test_messages_name_the_map_by_its_index(channels):
    images, headers = channels[171]
    maps = maps_of(images, headers, range(5))
    odd = maps[:3] + [sunpy.map.Map(images[3][:4], headers[3])] + maps[4:]
    with pytest.raises(ValueError, match=r"map 3 has shape \(4, 8\), but map 0 has \(6, 8\)"):
        TimelagCube.from_maps(odd)
    with pytest.raises(ValueError, match=r"map 1 and map 4 have the same observation time 2011-02-15T00:00:12"):
        TimelagCube.from_maps([*maps[:4], sunpy.map.Map(images[4], headers[1])])
