"""Header scan, lazy loading and bad input of `TimelagCube.from_files`."""
import gzip
import os
import pickle

import astropy.units as u
import fsspec
import numpy as np
import pytest
import sunpy.map
from astropy.io import fits
from astropy.time import Time

from sunpy_timelag import TimelagCube
from sunpy_timelag.exceptions import InputFileError
from sunpy_timelag.io.loader import FITSFrameLoader

from .conftest import write_frames


def test_glob_list_and_urls_give_the_same_cube(aia_frames):
    directory = os.path.dirname(aia_frames[0])
    from_glob = TimelagCube.from_files(os.path.join(directory, "*.fits"))
    from_list = TimelagCube.from_files(aia_frames[::-1])
    from_url = TimelagCube.from_files(f"file://{directory}/*.fits")
    for cube in (from_list, from_url):
        assert (cube.time == from_glob.time).all()
        np.testing.assert_array_equal(cube.data.compute(), from_glob.data.compute())


def test_memory_filesystem(aia_frames):
    memory = fsspec.filesystem("memory")
    for path in aia_frames:
        memory.pipe(f"/obs/171/{os.path.basename(path)}", open(path, "rb").read())
    cube = TimelagCube.from_files("memory://obs/171/*.fits")
    expected = TimelagCube.from_files(aia_frames)
    np.testing.assert_array_equal(cube.data.compute(), expected.data.compute())


def test_frames_are_sorted_by_time_and_read_lazily(aia_frames, monkeypatch):
    calls = []
    original = FITSFrameLoader.read_stored  # every read of these uncompressed files
    monkeypatch.setattr(FITSFrameLoader, "read_stored", lambda self, *args, **kwargs: calls.append(self) or
                        original(self, *args, **kwargs))
    cube = TimelagCube.from_files(aia_frames[::-1])
    prepared = cube.normalize_exposure().submap([20, 10] * u.pix, top_right=[59, 69] * u.pix).rebin((1, 2, 2))
    cube.average(), cube.to_maps(), prepared.time
    assert calls == []  # nothing read before compute
    np.testing.assert_allclose(np.diff((cube.time - cube.time[0]).to_value("s")), 12.0, atol=1e-6)
    for i, path in enumerate(aia_frames):
        np.testing.assert_array_equal(cube.data[i].compute(), sunpy.map.Map(path).data)
    prepared.data.compute()
    assert len(calls) == len(aia_frames) * 2


def test_chunks_are_one_file_each(aia_frames):
    cube = TimelagCube.from_files(aia_frames)
    assert cube.data.chunks == ((1,) * 6, (128,), (128,))
    assert cube.data.dtype == np.int16


def test_loaders_pickle(aia_frames):
    cube = TimelagCube.from_files(aia_frames)
    restored = pickle.loads(pickle.dumps(cube))
    np.testing.assert_array_equal(restored.data.compute(), cube.data.compute())
    assert (restored.time == cube.time).all()


@pytest.mark.parametrize(("keyword", "expected"), [
    ("DATE-AVG", "2012-01-01T00:00:10.000"),  # the mean time, as it is
    ("DATE-OBS", "2012-01-01T00:00:11.050"),  # the start, + EXPTIME / 2 = 2.1 s / 2: the mid-exposure time too
])
def test_time_keyword_fallbacks(tmp_path, keyword, expected):
    paths = write_frames(tmp_path, n_frames=3)
    for i, path in enumerate(paths):
        with fits.open(path, mode="update") as hdulist:
            header = hdulist[0].header
            header[keyword] = f"2012-01-01T00:00:{10 * i:02d}.000"
            for other in ("T_OBS", "DATE-AVG", "DATE-OBS")[: ("T_OBS", "DATE-AVG", "DATE-OBS").index(keyword)]:
                header.remove(other, ignore_missing=True)
    cube = TimelagCube.from_files(paths)
    assert cube.time[1].isot == expected


# ---- bad input ---------------------------------------------------------------------------------


def test_empty_glob(tmp_path):
    with pytest.raises(FileNotFoundError, match="no file matches"):
        TimelagCube.from_files(str(tmp_path / "*.fits"))


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.fits"):
        TimelagCube.from_files([str(tmp_path / "nothing.fits")])


def test_not_fits(tmp_path, aia_frames):
    bad = tmp_path / "notes.fits"
    bad.write_text("these are not the frames you are looking for\n" * 100)
    with pytest.raises(OSError, match="notes.fits is not a readable FITS file"):
        TimelagCube.from_files([*aia_frames, str(bad)])


def test_truncated_fits(tmp_path, aia_frames):
    truncated = tmp_path / "truncated.fits"
    truncated.write_bytes(open(aia_frames[0], "rb").read()[:-5000])
    with pytest.raises(OSError, match="truncated.fits is truncated"):
        TimelagCube.from_files([*aia_frames[1:], str(truncated)])


def test_different_shape(tmp_path, aia_frames):
    odd = tmp_path / "odd.fits"
    with fits.open(aia_frames[0]) as hdulist:
        header = hdulist[0].header
        header["T_OBS"] = "2011-02-15T01:00:00.00Z"
        fits.writeto(odd, hdulist[0].data[:64], header)
    with pytest.raises(ValueError, match=r"odd.fits has shape \(64, 128\)"):
        TimelagCube.from_files([*aia_frames, str(odd)])


def test_different_dtype(tmp_path, aia_frames):
    odd = tmp_path / "odd.fits"
    with fits.open(aia_frames[0]) as hdulist:
        header = hdulist[0].header
        header["T_OBS"] = "2011-02-15T01:00:00.00Z"
        fits.writeto(odd, hdulist[0].data.astype(np.float32), header)
    with pytest.raises(ValueError, match="odd.fits has dtype float32"):
        TimelagCube.from_files([*aia_frames, str(odd)])


def test_different_channel(tmp_path, aia_frames):
    other = write_frames(tmp_path / "193", n_frames=1, start_minute=5, WAVELNTH=193)
    with pytest.raises(ValueError, match="WAVELNTH=193.*a cube holds one channel"):
        TimelagCube.from_files([*aia_frames, *other])


def test_missing_time(tmp_path):
    paths = write_frames(tmp_path, n_frames=2)
    with fits.open(paths[1], mode="update") as hdulist:
        for keyword in ("T_OBS", "DATE-OBS", "DATE-AVG"):
            hdulist[0].header.remove(keyword, ignore_missing=True)
    with pytest.raises(ValueError, match=f"{os.path.basename(paths[1])} has no observation time"):
        TimelagCube.from_files(paths)


def test_duplicate_times(tmp_path, aia_frames):
    copy = write_frames(tmp_path / "again", n_frames=1)
    with pytest.raises(ValueError, match="have the same observation time 2011-02-15T00:00:01.340"):
        TimelagCube.from_files([*aia_frames, *copy])


def test_pointing_mismatch(tmp_path, aia_frames):
    moved = write_frames(tmp_path / "moved", n_frames=1, start_minute=5, CRPIX1=80.0)
    with pytest.raises(ValueError, match="points .* pixels away.*pointing_tolerance"):
        TimelagCube.from_files([*aia_frames, *moved])
    cube = TimelagCube.from_files([*aia_frames, *moved], pointing_tolerance=50)
    assert cube.data.shape[0] == 7


def test_tile_compressed_files_as_aia_distributes_them(tmp_path, aia_frames):
    compressed = []
    for i, path in enumerate(aia_frames):
        with fits.open(path) as hdulist:
            image = fits.CompImageHDU(hdulist[0].data, hdulist[0].header, compression_type="RICE_1")
            compressed.append(str(tmp_path / f"compressed_{i}.fits"))
            fits.HDUList([fits.PrimaryHDU(), image]).writeto(compressed[-1])
    cube = TimelagCube.from_files(compressed)
    expected = TimelagCube.from_files(aia_frames)
    assert (cube.time == expected.time).all()
    np.testing.assert_array_equal(cube.data.compute(), expected.data.compute())


@pytest.mark.parametrize(
    ("dtype", "scaling"),
    [
        (np.int16, {}),
        (np.uint16, {}),  # written with BZERO = 32768
        (np.int32, {}),
        (np.float32, {}),
        (np.float64, {}),
        (np.int16, {"BSCALE": 0.5, "BZERO": 100.0, "BLANK": -32768}),
    ],
)
def test_loader_reads_what_astropy_reads(tmp_path, dtype, scaling):
    rng = np.random.default_rng(1)
    image = rng.integers(0, 30000, size=(20, 30)).astype(dtype)
    path = write_frames(tmp_path / "template", n_frames=1)[0]
    header = fits.getheader(path)
    path = tmp_path / "frame.fits"
    hdu = fits.PrimaryHDU(image, header)
    if scaling:
        image[0, :3] = -32768
        hdu = fits.PrimaryHDU(image, header, do_not_scale_image_data=True)
        hdu.header.update(scaling)
    hdu.writeto(path)
    cube = TimelagCube.from_files(str(path))
    expected = fits.getdata(path)
    assert cube.data.dtype == expected.dtype.newbyteorder("=")  # native byte order
    np.testing.assert_array_equal(cube.data[0].compute(), expected)


# ---- inputs that must fail with a message naming the file (issue 12) -----------------------------


def corrupt(path, old, new):
    """Overwrite the bytes ``old`` of the file at ``path`` by ``new`` (as long): a damaged header."""
    raw = open(path, "rb").read()
    assert len(old) == len(new) and raw.count(old) == 1
    open(path, "wb").write(raw.replace(old, new))


@pytest.mark.parametrize(("frame", "old", "new", "message"), [
    # astropy's VerifyError when the card is read (every frame's EXPTIME is), deep in the cube's construction
    (1, b"EXPTIME =                  2.1", b"EXPTIME = '2.1 unterminated   ", r"'EXPTIME' \(VerifyError"),
    # stray bytes in a keyword: a re.error when sunpy reads the first frame's header as a dict
    (0, b"CROTA2  =", b"CR(TA2 *=", r"'CR\(TA2 \*' \(error"),
])
def test_a_garbled_card_names_its_file(tmp_path, frame, old, new, message):
    paths = write_frames(tmp_path, n_frames=4)
    corrupt(paths[frame], old, new)
    name = os.path.basename(paths[frame])
    with pytest.raises(InputFileError, match=rf"{name} has an unreadable header card: {message}"):
        TimelagCube.from_files(paths)


@pytest.mark.parametrize(("old", "new", "error"), [
    (b"CUNIT1  = 'arcsec  '", b"CUNIT1  = 'kg      '", "MapMetaValidationError"),  # sunpy: not an angle
    (b"CUNIT1  = 'arcsec  '", b"CUNIT1  = 'q&z#x!  '", "ValueError"),  # astropy: not a unit
    (b"CTYPE1  = 'HPLN-TAN'", b"CTYPE1  = 'H@#N-T!N'", "InconsistentAxisTypesError"),  # wcslib: no projection
])
def test_stray_bytes_in_the_first_frames_header_name_it(tmp_path, old, new, error):
    paths = write_frames(tmp_path, n_frames=4)
    corrupt(paths[0], old, new)  # the first frame in time, which sunpy reads as a map
    with pytest.raises(InputFileError, match=rf"{os.path.basename(paths[0])}: its header cannot be read as a map "
                                             rf"\({error}"):
        TimelagCube.from_files(paths)


def test_a_folder_is_not_a_file(aia_frames):
    folder = os.path.dirname(aia_frames[0])
    with pytest.raises(IsADirectoryError, match=rf"'{folder}' is a folder: give its files, e.g. '{folder}/\*.fits'"):
        TimelagCube.from_files(folder)


def test_files_compressed_as_a_whole_are_named(tmp_path, aia_frames):
    zipped = tmp_path / "frame.fits.gz"
    with open(aia_frames[0], "rb") as plain, gzip.open(zipped, "wb") as stream:
        stream.write(plain.read())
    with pytest.raises(InputFileError, match=r"frame.fits.gz is gzip-compressed as a whole.*gunzip"):
        TimelagCube.from_files([*aia_frames[1:], str(zipped)])


def test_hdu_beyond_the_file_or_not_an_image(tmp_path, aia_frames):
    with pytest.raises(InputFileError, match=r"frame_005.fits has 1 HDU\(s\), numbered from 0: there is no hdu=3"):
        TimelagCube.from_files(aia_frames[0], hdu=3)
    with pytest.raises(TypeError, match=r"hdu must be the index of an HDU \(an integer\), got '1'"):
        TimelagCube.from_files(aia_frames[0], hdu="1")
    table = tmp_path / "table.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU.from_columns([fits.Column("a", "E", array=np.ones(3))])]).writeto(
        table)
    with pytest.raises(InputFileError, match=r"table.fits: HDU 1 is not a 2-D image \(BinTableHDU"):
        TimelagCube.from_files(str(table), hdu=1)


def start_times_too(paths):
    """Give every frame DATE-OBS, its start: T_OBS (the middle) - EXPTIME / 2, as AIA writes them."""
    for path in paths:
        with fits.open(path, mode="update") as hdulist:
            header = hdulist[0].header
            start = Time(header["T_OBS"].rstrip("Z")) - header["EXPTIME"] / 2 * u.s
            header["DATE-OBS"] = start.isot


def test_frames_without_mid_exposure_time_take_start_plus_half_the_exposure(tmp_path):
    paths = write_frames(tmp_path, n_frames=5)
    start_times_too(paths)
    middles = Time([fits.getheader(path)["T_OBS"].rstrip("Z") for path in paths])
    for path in paths[1::2]:  # some frames give only their start and exposure time
        with fits.open(path, mode="update") as hdulist:
            del hdulist[0].header["T_OBS"]
    cube = TimelagCube.from_files(paths)
    assert np.abs((cube.time - middles).to_value(u.s)).max() < 1e-6  # all at mid-exposure, one convention


def test_start_and_mid_exposure_times_are_not_mixed(tmp_path):
    paths = write_frames(tmp_path, n_frames=5)
    start_times_too(paths)
    with fits.open(paths[2], mode="update") as hdulist:  # only its start: no T_OBS, no EXPTIME
        del hdulist[0].header["T_OBS"]
        del hdulist[0].header["EXPTIME"]
    with pytest.raises(ValueError, match=rf"{os.path.basename(paths[2])} gives only its start time \(DATE-OBS, no "
                                         r"EXPTIME\) but .* its mid-exposure time \(T_OBS\)"):
        TimelagCube.from_files(paths)


def test_memory_files_are_not_on_other_processes(aia_frames):
    """A worker process of a cluster has its own, empty memory:// file system: the read names the file."""
    memory = fsspec.filesystem("memory")
    folder = f"/elsewhere-{os.getpid()}"
    for path in aia_frames:
        memory.pipe(f"{folder}/{os.path.basename(path)}", open(path, "rb").read())
    shipped = pickle.dumps(TimelagCube.from_files(f"memory://{folder}/*.fits"))  # as the scheduler ships it
    memory.rm(folder, recursive=True)  # what a worker's memory holds
    with pytest.raises(FileNotFoundError, match=f"{folder}/frame_00"):
        pickle.loads(shipped).data.compute(scheduler="sync")
