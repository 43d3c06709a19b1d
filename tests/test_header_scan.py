"""The header scan reads what astropy reads: headers, HDU and data offset, for plain, multi-HDU and compressed files."""
import warnings

import fsspec
import numpy as np
import pytest
from astropy.io import fits
from astropy.utils.exceptions import AstropyUserWarning

from sunpy_timelag.exceptions import InputFileError
from sunpy_timelag.io.files import resolve_files
from sunpy_timelag.io.headers import header_row, read_frame_header, scan_headers

from .conftest import write_frames

IMAGE = np.arange(7 * 5, dtype=np.float32).reshape(7, 5) - 3.5


def table(rows=3):
    return fits.BinTableHDU.from_columns([fits.Column("a", "E", array=np.ones(rows)), fits.Column("b", "10A")])


def long_header(cards=60):
    """More cards than one 2880-byte block holds (36): the header spans several blocks."""
    return fits.Header([(f"KEY{i}", i * 0.5, "a card") for i in range(cards)] + [("HISTORY", "made for a test")])


RICE = {"compression_type": "RICE_1"}
LAYOUTS = {
    # name: (HDUs, the image HDU astropy's first 2-D image is)
    "primary image": ([fits.PrimaryHDU(IMAGE.astype(np.int16), long_header())], 0),
    "image extension": ([fits.PrimaryHDU(), fits.ImageHDU(IMAGE, long_header(), name="SCI")], 1),
    "after a table": ([fits.PrimaryHDU(), table(), fits.ImageHDU(IMAGE.astype(">f8"))], 2),
    "cube then image": ([fits.PrimaryHDU(np.zeros((2, 3, 4), np.int32)), table(40), fits.ImageHDU(IMAGE)], 2),
    "unsigned": ([fits.PrimaryHDU(), fits.ImageHDU(np.arange(35, dtype=np.uint16).reshape(7, 5))], 1),
    "compressed": ([fits.PrimaryHDU(), fits.CompImageHDU(IMAGE.astype(np.int32), long_header(), **RICE)], 1),
}


@pytest.fixture(params=list(LAYOUTS))
def layout(request, tmp_path):
    hdus, index = LAYOUTS[request.param]
    path = tmp_path / f"{request.param.replace(' ', '_')}.fits"
    fits.HDUList(hdus).writeto(path)
    return str(path), index, request.param == "compressed"


def test_header_and_data_offset_are_astropys(layout, monkeypatch):
    path, index, compressed = layout
    with monkeypatch.context() as patch:
        if not compressed:  # the cheap way: only header blocks read and parsed, no HDUList
            patch.setattr(fits, "open", lambda *args, **kwargs: pytest.fail("fits.open called"))
        frame = read_frame_header(fsspec.open(path, "rb"))
    with fits.open(path) as hdulist:
        expected = hdulist[index]
        assert frame.hdu == index
        assert frame.header == header_row(expected.header)
        assert frame.shape == expected.data.shape and frame.dtype == expected.data.dtype.newbyteorder("=")
        if compressed:
            assert frame.data_offset is None  # astropy decompresses it
            return
        assert frame.data_offset == hdulist.fileinfo(index)["datLoc"]
    with fits.open(path, do_not_scale_image_data=True) as hdulist:  # the bytes as stored
        stored = hdulist[index].data
    on_disk = np.frombuffer(open(path, "rb").read(), dtype=stored.dtype, count=stored.size, offset=frame.data_offset)
    np.testing.assert_array_equal(on_disk.reshape(frame.shape), stored)


def test_an_hdu_asked_for(tmp_path):
    path = tmp_path / "two.fits"
    fits.HDUList([fits.PrimaryHDU(IMAGE), table(), fits.ImageHDU(2 * IMAGE[:4])]).writeto(path)
    frame = read_frame_header(fsspec.open(str(path), "rb"), hdu=2)
    assert frame.hdu == 2 and frame.shape == (4, 5)
    assert frame.header == header_row(fits.getheader(path, 2))
    assert frame.data_offset == fits.open(path).fileinfo(2)["datLoc"]
    with pytest.raises(InputFileError, match=r"two.fits: HDU 1 is not a 2-D image \(BinTableHDU, NAXIS=2\)"):
        read_frame_header(fsspec.open(str(path), "rb"), hdu=1)
    with pytest.raises(InputFileError, match=r"two.fits has 3 HDU\(s\), numbered from 0: there is no hdu=5"):
        read_frame_header(fsspec.open(str(path), "rb"), hdu=5)


def test_no_image_at_all(tmp_path):
    path = tmp_path / "tables.fits"
    fits.HDUList([fits.PrimaryHDU(), table()]).writeto(path)
    with pytest.raises(InputFileError, match="tables.fits has no 2-D image HDU"):
        read_frame_header(fsspec.open(str(path), "rb"))


@pytest.mark.parametrize("damage", ["END with stray bytes", "NUL padding", "non-ASCII comment"])
def test_headers_astropy_reads_with_a_warning(tmp_path, damage):
    # headers off the standard that astropy still reads: the scan agrees with it
    path = tmp_path / "odd.fits"
    fits.PrimaryHDU(IMAGE, long_header(10)).writeto(path)
    raw = bytearray(path.read_bytes())
    end = raw.find(b"END" + b" " * 77)
    if damage == "END with stray bytes":
        raw[end + 3:end + 80] = b"x" * 77
    elif damage == "NUL padding":
        raw[end + 80:2880] = bytes(2880 - end - 80)
    else:
        comment = raw.find(b"a card")
        raw[comment:comment + 1] = b"\xe9"
    path.write_bytes(bytes(raw))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AstropyUserWarning)
        frame = read_frame_header(fsspec.open(str(path), "rb"))
        with fits.open(path) as hdulist:
            assert frame.header == header_row(hdulist[0].header)
            assert frame.data_offset == hdulist.fileinfo(0)["datLoc"]
            np.testing.assert_array_equal(hdulist[0].data, IMAGE)


def test_truncated_compressed_file(tmp_path):
    path = tmp_path / "compressed.fits"
    hdus, _ = LAYOUTS["compressed"]
    fits.HDUList(hdus).writeto(path)
    raw = path.read_bytes()
    path.write_bytes(raw[:-2880])  # the last block of the table's heap is missing
    with pytest.raises(InputFileError, match=rf"compressed.fits is truncated: its header announces {len(raw)} bytes, "
                                             rf"the file has {len(raw) - 2880}"), warnings.catch_warnings():
        warnings.simplefilter("ignore", AstropyUserWarning)  # astropy's own word on it
        read_frame_header(fsspec.open(str(path), "rb"))


def test_the_scan_is_the_same_in_threads_in_file_order(tmp_path):
    paths = write_frames(tmp_path, n_frames=5)
    for files in (resolve_files(paths), resolve_files([f"memory://{p}" for p in _copied_to_memory(paths)])):
        serial = scan_headers(files, max_workers=1)
        assert [frame.name for frame in serial] == [file.full_name for file in files]
        for max_workers in (None, 3):
            assert [(f.header, f.data_offset) for f in scan_headers(files, max_workers=max_workers)] == \
                   [(f.header, f.data_offset) for f in serial]
        assert [frame.header for frame in serial] == [header_row(fits.getheader(p)) for p in paths]


def _copied_to_memory(paths):
    memory = fsspec.filesystem("memory")
    for path in paths:
        memory.pipe(path, open(path, "rb").read())
    return paths
