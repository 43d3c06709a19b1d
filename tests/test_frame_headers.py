"""Per-frame headers as one table (`FrameHeaders`): rows as sunpy reads the files, slicing with the cube, memory."""
import math
import os
import sys
import warnings

import astropy.units as u
import numpy as np
import pytest
import sunpy.map
from astropy.io import fits
from astropy.table import Table
from sunpy.util.metadata import MetaDict

from sunpy_timelag import TimelagCube
from sunpy_timelag.io.headers import header_row
from sunpy_timelag.io.meta import FrameHeaders

from .conftest import write_frames


@pytest.fixture
def cube(aia_frames):
    return TimelagCube.from_files(aia_frames)


def sunpy_meta(path):
    """The header of a file as sunpy reads it into a Map, without the key comments (which a row leaves out)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        meta = sunpy.map.Map(path).meta
    return {key: value for key, value in meta.items() if key != "keycomments"}


def test_rows_are_the_headers_sunpy_reads(cube, aia_frames):
    assert isinstance(cube.headers, FrameHeaders) and len(cube.headers) == 6
    for row, path in zip(cube.headers, aia_frames, strict=True):
        assert isinstance(row, MetaDict)
        expected = sunpy_meta(path)
        # sunpy adds an empty COMMENT or HISTORY where the file has none; a row does not
        missing = {key for key in expected.keys() - row.keys() if expected[key] == ""}
        assert row.keys() == expected.keys() - missing
        for key, value in row.items():
            assert value == expected[key] and type(value) is type(expected[key]), key


def test_maps_of_the_rows_are_the_maps_of_the_files(cube, aia_frames):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        files = [sunpy.map.Map(path) for path in aia_frames]
    for frame, expected in zip(cube.to_maps(), files, strict=True):
        assert type(frame) is type(expected) and frame.date == expected.date
        assert frame.exposure_time == expected.exposure_time and frame.wavelength == expected.wavelength
        assert frame.observer_coordinate.separation_3d(expected.observer_coordinate) < 1 * u.m
        np.testing.assert_array_equal(frame.data, expected.data)


def test_columns_give_one_keyword_in_every_frame(cube, aia_frames):
    headers = cube.headers
    written = [fits.getheader(path) for path in aia_frames]
    exposure = headers.column("exptime")  # case-insensitive
    assert exposure.dtype == np.float64
    np.testing.assert_array_equal(exposure, [h["EXPTIME"] for h in written])
    assert list(headers.column("T_OBS")) == [h["T_OBS"] for h in written]
    assert headers.column("NAXIS1").dtype == np.int64 and headers.column("SIMPLE").dtype == bool
    assert isinstance(headers.table, Table) and headers.table.colnames == list(headers.keywords)
    assert len(headers.table) == 6 and "EXPTIME" in headers.keywords
    with pytest.raises(KeyError, match="no frame's header has the keyword 'NOSUCHKEY'"):
        headers.column("NOSUCHKEY")


def test_slicing_follows_the_cube(cube):
    headers = cube.headers
    assert cube[2:5, 10:20].headers.column("T_OBS").tolist() == headers.column("T_OBS")[2:5].tolist()
    assert cube[1:4].headers == [headers[i] for i in (1, 2, 3)]
    assert cube.rebin((3, 1, 1)).headers == (headers[0], headers[3])
    assert cube[5].headers == (headers[5],) and headers[-1] == headers[5]
    assert headers[np.array([4, 1])] == (headers[4], headers[1])
    assert headers[np.arange(6) % 2 == 1] == (headers[1], headers[3], headers[5])
    assert headers[:] is headers and list(headers) == [headers[i] for i in range(6)]
    with pytest.raises(IndexError):
        headers[6]


def test_keywords_absent_from_some_frames_are_masked():
    headers = FrameHeaders.from_headers([{"A": 1, "B": "x", "N": math.nan}, {"a": 2.5, "n": math.nan},
                                         {"B": "x", "C": None, "N": math.nan}])
    assert headers[1:2] == [{"A": 2.5, "N": math.nan}] and "B" not in headers[1]
    assert headers[2]["C"] is None and headers[2]["b"] == "x"
    a = headers.column("A")  # an integer in one frame, a float in another: a float column
    assert a.dtype == np.float64 and a.mask.tolist() == [False, False, True] and a[:2].tolist() == [1.0, 2.5]
    assert headers.table["B"][0] is headers.table["B"][2]  # equal strings are one object
    # comparisons as of tuples of headers, NaN equal to NaN
    assert headers == [{"A": 1, "B": "x", "N": math.nan}, {"A": 2.5, "N": math.nan},
                       {"B": "x", "C": None, "N": math.nan}]
    assert headers != [{"A": 1, "B": "x", "N": math.nan}, {"A": 2.5, "N": 0.0}, {"B": "x", "C": None, "N": math.nan}]
    assert headers[2:] == ({"B": "x", "C": None, "N": math.nan},) and headers != headers[:2]
    with pytest.raises(KeyError, match="no frame's header has the keyword 'C'"):
        headers[:2].column("C")


def test_updated_sets_and_removes_keywords_in_every_frame():
    headers = FrameHeaders.from_headers([{"A": 1, "B": 2, "C": 3}] * 3)
    new = headers.updated({"b": None, "D": "grid", "E": np.array([0.5, 1.5, 2.5])}, remove=["c"])
    assert new == [{"A": 1, "D": "grid", "E": e} for e in (0.5, 1.5, 2.5)]
    assert headers == [{"A": 1, "B": 2, "C": 3}] * 3  # unchanged
    with pytest.raises(ValueError, match="E has 2 values for 3 frames"):
        headers.updated({"E": [1, 2]})
    empty = FrameHeaders.from_headers([{}] * 4)
    assert len(empty) == 4 and len(empty[1:]) == 3 and empty.updated({"X": 1}).column("X").tolist() == [1] * 4


def test_header_row_reads_an_astropy_header_as_sunpy_does(tmp_path):
    header = fits.Header([("EXPTIME", 2.5), ("OBJECT", "Sun  "), ("EMPTY", fits.card.UNDEFINED),
                          ("HIERARCH LONG KEYWORD", 7), ("CUNIT1", "arcsec"), ("CUNIT2", "arcsec")])
    header.add_comment("first line")
    header.add_history("a step")
    header.add_comment("second line")
    header.append(("EXPTIME", 9.0), useblanks=False, bottom=True)  # a repeated keyword: astropy reads the first
    path = tmp_path / "header.fits"
    fits.PrimaryHDU(np.zeros((2, 2), np.float32), header=header).writeto(path)
    row = header_row(fits.getheader(path))
    assert row["EXPTIME"] == 2.5 and row["OBJECT"] == "Sun" and row["EMPTY"] is None
    assert row["LONG KEYWORD"] == 7 and "" not in row
    expected = sunpy_meta(path)
    assert row["COMMENT"] == expected["comment"] == "first line\nsecond line"
    assert row["HISTORY"] == expected["history"] == "a step"


def test_the_table_of_a_dkist_dataset_is_kept():
    dkist = pytest.importorskip("dkist")
    from dkist.data.test import rootdir

    dataset = dkist.load_dataset(os.path.join(rootdir, "EIT"))
    cube = TimelagCube.from_ndcube(dataset)
    assert cube.headers.column("DATE-OBS").tolist() == list(dataset.headers["DATE-OBS"])
    assert cube.headers.column("EXPTIME").tolist() == list(dataset.headers["EXPTIME"])
    assert cube.headers[3]["T_OBS"] == cube.time[3].isot  # the cube's own keywords added


def table_bytes(headers):
    """
    Bytes of the table's data: the columns' buffers and masks, and every distinct object an object
    column points to (a string shared by all frames counted once), as `sys.getsizeof` gives them.
    """
    total, seen = 0, set()
    for column in headers.table.columns.values():
        data = np.asarray(column)
        total += data.nbytes + np.ma.getmaskarray(column).nbytes * np.ma.is_masked(column)
        if data.dtype == object:
            for value in data:
                if id(value) not in seen:
                    seen.add(id(value))
                    total += sys.getsizeof(value)
    return total


def test_memory_per_frame_is_a_few_kb(tmp_path):
    n = 100
    paths = write_frames(tmp_path, n_frames=n)
    cube = TimelagCube.from_files(paths, pointing_tolerance=5)
    per_frame = table_bytes(cube.headers) / n
    # 189 cards: about 8 bytes a keyword, and the strings that change from frame to frame (T_OBS);
    # the astropy Header of each frame, which the cube held before, is about 94 KB
    assert per_frame < 2.5e3
    assert table_bytes(cube.headers[:n // 2]) / (n // 2) == pytest.approx(per_frame, rel=0.05)


def test_the_registration_graph_carries_transforms_not_headers(tmp_path):
    import pickle

    cube = TimelagCube.from_files(write_frames(tmp_path, n_frames=10))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # aiapy's warning on the synthetic frames' level
        registered = cube.register()
    graph = pickle.dumps(dict(registered.data.__dask_graph__()))
    # each frame's Registration: a few numbers, less than its level-1.5 header alone
    assert len(graph) / 10 < min(2e3, len(pickle.dumps(dict(registered.headers[0]))))
    assert registered.headers.column("LVL_NUM").tolist() == [1.5] * 10
