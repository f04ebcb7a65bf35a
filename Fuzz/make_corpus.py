#!/usr/bin/env python3
"""Writes the fuzz targets' seed corpus (Fuzz/corpus/{tiff,png,safetensors}): small valid files of
each kind the readers support, and a few damaged ones. Deterministic; rerun after changing it.
Needs numpy, tifffile, Pillow and safetensors (scripts/setup.sh --tests installs them)."""
import io
import json
import pathlib
import struct
import zlib

import numpy as np
import tifffile
from PIL import Image
from safetensors.numpy import save

ROOT = pathlib.Path(__file__).resolve().parent / "corpus"
rng = np.random.default_rng(7)


def put(folder, name, data):
    path = ROOT / folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


# MARK: - TIFF

def tiff(**kw):
    out = io.BytesIO()
    pages = kw.pop("pages")
    with tifffile.TiffWriter(out, bigtiff=kw.pop("bigtiff", False), byteorder=kw.pop("byteorder", "<")) as w:
        for page, extra in pages:
            w.write(page, **{**kw, **extra})
    return out.getvalue()


g8 = rng.integers(0, 256, (12, 10), dtype=np.uint8)
g16 = rng.integers(0, 65536, (9, 7), dtype=np.uint16)
rgb = rng.integers(0, 256, (20, 18, 3), dtype=np.uint8)
mask = (rng.random((16, 16)) > 0.5)
put("tiff", "gray8.tif", tiff(pages=[(g8, {})], photometric="minisblack"))
put("tiff", "gray8-rows3.tif", tiff(pages=[(g8, {})], photometric="minisblack", rowsperstrip=3))


def pillow_tiff(image, **kw):
    out = io.BytesIO()
    image.save(out, "TIFF", **kw)
    return out.getvalue()


# tifffile writes LZW only with imagecodecs; Pillow goes through libtiff.
put("tiff", "gray16-lzw.tif", pillow_tiff(Image.fromarray(g16), compression="tiff_lzw"))
put("tiff", "gray8-whiteiszero.tif", tiff(pages=[(g8, {})], photometric="miniswhite"))
put("tiff", "rgb8-deflate-tiles.tif", tiff(pages=[(rgb, {})], photometric="rgb", compression="zlib", tile=(16, 16)))
put("tiff", "rgb8-planar.tif", tiff(pages=[(rgb.transpose(2, 0, 1).copy(), {})], photometric="rgb", planarconfig="separate"))
put("tiff", "rgba8.tif", tiff(pages=[(np.dstack([rgb, rgb[..., :1]]), {})], photometric="rgb", extrasamples=["unassalpha"]))
palette = np.zeros((3, 256), dtype=np.uint16)
palette[:, 1], palette[:, 2] = [65535, 0, 0], [0, 65535, 0]
put("tiff", "palette8.tif", tiff(pages=[(rng.integers(0, 3, (8, 8), dtype=np.uint8), {})], photometric="palette", colormap=palette))
put("tiff", "pages-and-thumbnail.tif", tiff(pages=[(g8, {}), (g8[::2, ::2].copy(), {"subfiletype": 1}), (g8.T.copy(), {})],
                                            photometric="minisblack"))
put("tiff", "gray8-bigendian.tif", tiff(pages=[(g8, {})], photometric="minisblack", byteorder=">"))
put("tiff", "gray8-bigtiff.tif", tiff(pages=[(g8, {})], photometric="minisblack", bigtiff=True))
put("tiff", "gray1-packbits.tif", pillow_tiff(Image.fromarray(mask), compression="packbits"))
whole = pillow_tiff(Image.fromarray(g16), compression="tiff_lzw")
put("tiff", "truncated-half.tif", whole[: len(whole) // 2])
put("tiff", "header-only.tif", b"II*\x00\x08\x00\x00\x00")
# One 1x1 page whose IFD links back to itself.
entries = [(256, 3, 1, 1), (257, 3, 1, 1), (258, 3, 1, 8), (262, 3, 1, 1), (273, 4, 1, 98), (278, 3, 1, 1), (279, 4, 1, 1)]
ifd = struct.pack("<H", len(entries)) + b"".join(struct.pack("<HHII", *e) for e in entries) + struct.pack("<I", 8)
put("tiff", "ifd-loop.tif", b"II*\x00\x08\x00\x00\x00" + ifd + b"\x80")

# MARK: - PNG


def png(image, **kw):
    out = io.BytesIO()
    image.save(out, "PNG", **kw)
    return out.getvalue()


put("png", "gray8.png", png(Image.fromarray(g8)))
put("png", "gray16.png", png(Image.fromarray(g16)))
put("png", "rgb8.png", png(Image.fromarray(rgb)))
put("png", "rgba8.png", png(Image.fromarray(np.dstack([rgb, rgb[..., :1]]))))
put("png", "gray-alpha.png", png(Image.fromarray(g8).convert("LA")))
put("png", "gray1.png", png(Image.fromarray(mask)))
p = Image.fromarray(rng.integers(0, 3, (8, 8), dtype=np.uint8), mode="P")
p.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0])
put("png", "palette.png", png(p))
put("png", "palette-2bit.png", png(p, bits=2))
put("png", "palette-transparent.png", png(p, transparency=1))


def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def gray8_png(pixels, interlaced=False, extra=b""):
    """An 8-bit grayscale PNG written by hand: Adam7 interlacing and colour chunks, which Pillow does not write."""
    h, w = pixels.shape
    passes = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]
    raw = b""
    for x0, y0, dx, dy in passes if interlaced else [(0, 0, 1, 1)]:
        part = pixels[y0::dy, x0::dx]
        if part.size:
            raw += b"".join(b"\x00" + row.tobytes() for row in part)
    header = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 1 if interlaced else 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + extra + chunk(b"IDAT", zlib.compress(raw))
            + chunk(b"IEND", b""))


put("png", "gray8-interlaced.png", gray8_png(g8, interlaced=True))
put("png", "gray8-gamma-srgb.png", gray8_png(g8, extra=chunk(b"gAMA", struct.pack(">I", 100000)) + chunk(b"sRGB", b"\x00")))
whole = png(Image.fromarray(rgb))
put("png", "truncated-half.png", whole[: len(whole) // 2])
put("png", "signature-only.png", whole[:8])
# A length field that claims 1.4 GB before the image data (found by fuzzing; libpng allocated it).
put("png", "chunk-length-past-end.png", whole[:33] + struct.pack(">I", 1481205308) + b"zTXt" + bytes(range(40)))

# MARK: - safetensors

put("safetensors", "f32-and-metadata.safetensors",
    save({"w": rng.standard_normal((3, 4)).astype(np.float32), "b": np.zeros(4, np.float32)}, metadata={"step": "7"}))
put("safetensors", "every-dtype.safetensors", save({
    "f64": np.arange(3, dtype=np.float64), "f16": np.arange(5, dtype=np.float16).reshape(1, 5),
    "i32": np.array([-1, 2], dtype=np.int32), "u8": np.arange(6, dtype=np.uint8).reshape(2, 3),
    "scalar": np.array(1.5, dtype=np.float32), "empty": np.zeros((0, 3), np.float32)}))


def raw_safetensors(header, body=b""):
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + body


# BF16 is not a numpy type: written by hand.
put("safetensors", "bf16.safetensors", raw_safetensors({"x": {"dtype": "BF16", "shape": [2], "data_offsets": [0, 4]}},
                                                      b"\x80\x3f\x00\x40"))
whole = save({"w": np.ones((4, 4), np.float32)})
put("safetensors", "truncated-body.safetensors", whole[:-5])
put("safetensors", "truncated-header.safetensors", whole[:12])
put("safetensors", "overlap.safetensors", raw_safetensors({
    "a": {"dtype": "U8", "shape": [2], "data_offsets": [0, 2]}, "b": {"dtype": "U8", "shape": [2], "data_offsets": [1, 3]}}, b"abc"))
