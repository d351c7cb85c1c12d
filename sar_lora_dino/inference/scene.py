"""Large scenes read one window at a time (rasterio, else a tifffile memory map, else in memory)."""

import importlib.util
import math
import warnings

import numpy as np

from sar_lora_dino.data.image_io import ImageReadError, has_tifffile, read_raw
from sar_lora_dino.data.scaling import parse_scaling, scaling_bounds

__all__ = ["SceneReader", "geo_reference", "has_rasterio", "tile_windows"]

_TIFF = (".tif", ".tiff")
_PIXELS_PER_BLOCK = 1 << 21  # full-resolution pixels read at once for statistics and overviews


def has_rasterio():
    """Whether the optional ``rasterio`` package (``pip install -e .[geo]``) is installed."""
    return importlib.util.find_spec("rasterio") is not None


def _rasterio_open(path):
    import rasterio

    with warnings.catch_warnings():  # a plain TIFF is fine: it just has no CRS
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        return rasterio.open(path)


def geo_reference(path):
    """
    Returns:
        tuple or None: (crs, affine transform) of a georeferenced TIFF when rasterio is
        installed, else None.
    """
    if not has_rasterio() or not path.lower().endswith(_TIFF):
        return None
    try:
        with _rasterio_open(path) as ds:
            return (ds.crs, ds.transform) if ds.crs is not None else None
    except Exception:  # unreadable by GDAL: the reader reports the file; no geography then
        return None


def tile_windows(width, height, tile, overlap):
    """
    Windows covering a scene: ``tile`` x ``tile`` squares, neighbours sharing ``overlap``
    pixels; the last row and column are moved back to end at the border, so every window lies
    inside the scene (a scene smaller than ``tile`` is one window of its own size).

    Returns:
        list[tuple[int, int, int, int]]: (x0, y0, w, h) per window, row by row.
    """
    if tile <= 0 or not 0 <= overlap < tile:
        raise ValueError(f"--tile must be > 0 and 0 <= --overlap < --tile, got {tile}, {overlap}")

    def starts(size):
        if size <= tile:
            return [0]
        s = list(range(0, size - tile + 1, tile - overlap))
        return s if s[-1] + tile >= size else s + [size - tile]

    return [
        (x, y, min(tile, width), min(tile, height)) for y in starts(height) for x in starts(width)
    ]


class SceneReader:
    """
    Read windows of one image file without holding the whole scene in memory where possible,
    with the first ``backend`` that applies (or the one named):

    * "rasterio" (GeoTIFFs, when the ``geo`` extra is installed): windowed reads with a small
      GDAL cache; also gives the CRS and the pixel-to-map transform (``geo``);
    * "tifffile" (uncompressed TIFFs, when tifffile is installed): a memory map opened per
      window and closed after it, so the resident memory stays one window;
    * "memory": anything else is read whole once (:func:`read_raw`) and cut into windows.

    Pixel values are the file's (no scaling); windows are HxWxC (C = 1 or 3).
    """

    def __init__(self, path, backend="auto"):
        self.path = path
        self.geo = None  # (crs, transform) of a georeferenced file read by rasterio
        self._array = self._memmap = self._dataset = self._env = None
        is_tiff = path.lower().endswith(_TIFF)
        if backend == "auto":
            if is_tiff and has_rasterio():
                backend = "rasterio"
            elif is_tiff and has_tifffile() and (layout := self._tiff_layout()) is not None:
                backend, self._memmap = "tifffile", layout
            else:
                backend = "memory"
        self.backend = backend
        getattr(self, f"_open_{backend}")()
        if self.dtype.kind == "c":
            raise ImageReadError(f"{self.path}: complex (SLC) pixels; convert to amplitude first")

    def _tiff_layout(self):
        """(offset, dtype, shape, planar) of contiguous uncompressed data, else None."""
        import tifffile

        try:
            with tifffile.TiffFile(self.path) as tif:
                series = tif.series[0]
                offset = series.dataoffset
                page = tif.pages[0]
                if offset is None or page.compression != 1:
                    return None
                dtype = np.dtype(series.dtype).newbyteorder(tif.byteorder)
                return offset, dtype, tuple(series.shape), page.planarconfig == 2
        except Exception:  # not a TIFF tifffile can map: the other backends will say why
            return None

    def _open_tifffile(self):
        layout = self._memmap or self._tiff_layout()  # auto has parsed the TIFF already
        if layout is None:
            raise ImageReadError(f"{self.path}: not an uncompressed TIFF that can be memory-mapped")
        self._memmap = layout
        self.height, self.width, self.channels = self._mapped().shape
        self.dtype = layout[1].newbyteorder("=")

    def _mapped(self):
        """The TIFF's pixels as an HxWxC memory map, opened anew so its pages leave with it."""
        offset, dtype, shape, planar = self._memmap
        mm = np.memmap(self.path, dtype=dtype, mode="r", offset=offset, shape=shape)
        if mm.ndim == 2:
            return mm[:, :, None]
        return np.moveaxis(mm, 0, -1) if planar else mm

    def _open_rasterio(self):
        import rasterio

        self._env = rasterio.Env(GDAL_CACHEMAX=64)  # MB: keep the block cache small
        self._env.__enter__()
        try:
            self._dataset = ds = _rasterio_open(self.path)
        except Exception as e:
            self._env.__exit__(None, None, None)
            raise ImageReadError(f"{self.path}: rasterio cannot open it: {e}") from e
        if any("complex" in str(d) for d in ds.dtypes):
            raise ImageReadError(f"{self.path}: complex (SLC) pixels; convert to amplitude first")
        if ds.count not in (1, 3, 4):
            raise ImageReadError(f"{self.path}: {ds.count} bands; expected 1, 3 or 4")
        self.width, self.height, self.channels = ds.width, ds.height, min(ds.count, 3)
        self.dtype = np.dtype(ds.dtypes[0])
        if ds.crs is not None:
            self.geo = (ds.crs, ds.transform)

    def _open_memory(self):
        self._array = read_raw(self.path)
        self.height, self.width, self.channels = self._array.shape
        self.dtype = self._array.dtype

    def read(self, x0, y0, w, h, step=1):
        """
        The window (``x0, y0, w, h`` in scene pixels), every ``step``-th row and column, as a
        ceil(h / step) x ceil(w / step) x C array in the file's dtype.
        """
        if self._dataset is not None:
            from rasterio.windows import Window

            bands = list(range(1, self.channels + 1))
            data = self._dataset.read(bands, window=Window(x0, y0, w, h))
            return np.ascontiguousarray(np.moveaxis(data[:, ::step, ::step], 0, -1))
        if self._array is not None:
            return self._array[y0 : y0 + h : step, x0 : x0 + w : step]
        window = self._mapped()[y0 : y0 + h : step, x0 : x0 + w : step]
        return np.array(window[..., :3], dtype=self.dtype)

    def _row_blocks(self, rows, step=1):
        """The scene as blocks of ``rows`` full-width rows, every ``step``-th pixel."""
        for y in range(0, self.height, rows):
            yield self.read(0, y, self.width, min(rows, self.height - y), step)

    def overview(self, max_side):
        """
        Returns:
            tuple[np.ndarray, int]: every ``step``-th pixel of the scene, with the longest side
            at most ``max_side``, and ``step``.
        """
        step = max(1, math.ceil(max(self.width, self.height) / max_side))
        rows = max(step, _PIXELS_PER_BLOCK // self.width // step * step)
        return np.concatenate(list(self._row_blocks(rows, step)), axis=0), step

    def bounds(self, scaling):
        """
        The scene-wide input values that ``dataloader.scaling`` maps to 0 and 255 (see
        :func:`scaling_bounds`), read in row blocks. 8- and 16-bit integers use an exact
        histogram; other types exact minimum/maximum and percentiles of every 4th pixel in
        each direction.
        """
        scaling = parse_scaling(scaling)
        if scaling.mode in ("none", "db") or self.dtype == np.uint8:
            return scaling_bounds(np.zeros(1, self.dtype), scaling, self.path)
        blocks = self._row_blocks(max(1, _PIXELS_PER_BLOCK // self.width))
        if self.dtype.kind not in "iu" or self.dtype.itemsize > 2:
            lo, hi, samples = math.inf, -math.inf, []
            for block in blocks:
                finite = block[np.isfinite(block)] if block.dtype.kind == "f" else block.ravel()
                if finite.size:
                    lo, hi = min(lo, float(finite.min())), max(hi, float(finite.max()))
                samples.append(block[::4, ::4].ravel())
            if scaling.mode == "minmax":
                return (lo, hi)
            return scaling_bounds(np.concatenate(samples), scaling, self.path)
        shift = -int(np.iinfo(self.dtype).min)
        hist = np.zeros(1 << (8 * self.dtype.itemsize), np.int64)
        for block in blocks:
            hist += np.bincount(block.astype(np.int32).ravel() + shift, minlength=hist.size)
        values = np.nonzero(hist)[0]
        if values.size == 0:
            raise ImageReadError(f"{self.path}: empty scene")
        if scaling.mode == "minmax":
            return (float(values[0] - shift), float(values[-1] - shift))
        cumulative = np.cumsum(hist)
        n = cumulative[-1]

        def percentile(p):  # numpy's default (linear) interpolation between order statistics
            rank = p / 100.0 * (n - 1)
            below, above = math.floor(rank), math.ceil(rank)
            v0 = np.searchsorted(cumulative, below + 1)
            v1 = np.searchsorted(cumulative, above + 1)
            return float(v0 - shift) + (rank - below) * float(v1 - v0)

        return (percentile(scaling.low), percentile(scaling.high))

    def close(self):
        """Release the file."""
        if self._dataset is not None:
            self._dataset.close()
            self._env.__exit__(None, None, None)
            self._dataset = None
        self._array = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
