"""
Fast FITS headers and files for many small frames that share one template header.

`astropy.io.fits` spends milliseconds per frame copying, verifying and serialising a header; for
thousands of frames that dominates the time to make an observation. Here the constant cards are
serialised once by astropy, the few cards that change per frame are formatted directly, and the file
is written as the FITS standard lays it out: header blocks, then the big-endian data, each padded to
2880 bytes.
"""
import numpy as np
from astropy.io import fits

from ..io.write import write_atomically

__all__ = ["template_cards", "header_string", "write_fits"]

BLOCK = 2880


def template_cards(header, shape):
    """
    Card images of a primary header for ``int16`` images of ``shape``, without the END card.

    Parameters
    ----------
    header : astropy.io.fits.Header
        The constant keywords; SIMPLE, BITPIX and NAXISn are added in front.
    shape : tuple of int
        ``(ny, nx)``.

    Returns
    -------
    str
    """
    full = fits.PrimaryHDU(np.zeros(shape, np.int16), header=header).header
    return full.tostring(endcard=False, padding=False)


def header_string(template, values):
    """
    Complete, padded header text: ``template`` followed by one card per item of ``values``.

    Parameters
    ----------
    template : str
        Output of `template_cards`.
    values : dict
        Keyword -> value as written in the card: a number formatted as text (``"2.000191"``) or a
        quoted string (``"'2011-02-15T00:00:01.34Z'"``).

    Returns
    -------
    str
    """
    cards = [template]
    for keyword, value in values.items():
        value = value.ljust(20) if value.startswith("'") else value.rjust(20)
        cards.append(f"{keyword:<8}= {value}".ljust(80))
    cards.append("END".ljust(80))
    text = "".join(cards)
    return text.ljust(-(-len(text) // BLOCK) * BLOCK)


def write_fits(path, header, data):
    """
    Write one primary HDU atomically (`~sunpy_timelag.io.write.write_atomically`).

    Parameters
    ----------
    path : pathlib.Path
    header : str
        Output of `header_string`.
    data : numpy.ndarray
        The image, of the type declared by BITPIX.
    """
    raw = data.astype(data.dtype.newbyteorder(">"), copy=False).tobytes()

    def write(temporary):
        with open(temporary, "wb") as f:
            f.write(header.encode("ascii"))
            f.write(raw)
            f.write(bytes(-len(raw) % BLOCK))

    write_atomically(path, write)
