"""Tests for harness.images: decoding of every image mode, errors, tensors, saving, listing."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from harness.images import (
    IMAGE_EXTENSIONS,
    ImageError,
    image_to_tensor,
    list_images,
    load_image,
    load_image_tensor,
    natural_key,
    resize_image,
    save_image,
    tensor_to_image,
)

SHARED_STYLE = Path(__file__).resolve().parents[2] / "shared/assets" / "images/eval/adain/style"


def pixels(img: Image.Image) -> np.ndarray:
    assert img.mode == "RGB"
    return np.asarray(img)


def write_png16(path: Path, array: np.ndarray, color_type: int) -> None:
    """Write a 16-bit-per-sample PNG by hand (PIL cannot write 16-bit RGB)."""
    h, w = array.shape[:2]
    rows = b"".join(b"\x00" + array[y].astype(">u2").tobytes() for y in range(h))

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", w, h, 16, color_type, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")
    )


def noise_image(w: int = 96, h: int = 64, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), "RGB")


# ----------------------------------------------------------------------------- modes


def test_rgb_png_exact(tmp_path):
    img = noise_image()
    img.save(tmp_path / "a.png")
    out = load_image(tmp_path / "a.png")
    assert out.size == img.size
    np.testing.assert_array_equal(pixels(out), np.asarray(img))


def test_mode_1_and_L(tmp_path):
    Image.fromarray(np.array([[0, 255]], np.uint8)).convert("1").save(tmp_path / "b.png")
    Image.fromarray(np.array([[0, 100, 255]], np.uint8), "L").save(tmp_path / "g.png")
    assert Image.open(tmp_path / "b.png").mode == "1"
    np.testing.assert_array_equal(pixels(load_image(tmp_path / "b.png"))[0], [[0, 0, 0], [255, 255, 255]])
    np.testing.assert_array_equal(pixels(load_image(tmp_path / "g.png"))[0], [[0] * 3, [100] * 3, [255] * 3])


def test_palette_with_and_without_transparency(tmp_path):
    img = Image.fromarray(np.array([[0, 1, 2]], np.uint8), "P")
    img.putpalette([255, 0, 0, 0, 0, 255, 10, 20, 30] + [0] * (256 * 3 - 9))
    img.save(tmp_path / "p.png")
    img.save(tmp_path / "pt.png", transparency=1)
    assert Image.open(tmp_path / "p.png").mode == "P"
    np.testing.assert_array_equal(pixels(load_image(tmp_path / "p.png"))[0], [[255, 0, 0], [0, 0, 255], [10, 20, 30]])
    # index 1 is fully transparent -> white
    np.testing.assert_array_equal(pixels(load_image(tmp_path / "pt.png"))[0], [[255, 0, 0], [255] * 3, [10, 20, 30]])


def test_rgba_and_la_composited_over_white(tmp_path):
    rgba = np.array([[[10, 20, 30, 0], [10, 20, 30, 255], [0, 0, 0, 128]]], np.uint8)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    out = pixels(load_image(tmp_path / "a.png"))[0].astype(int)
    assert out[0].tolist() == [255, 255, 255]
    assert out[1].tolist() == [10, 20, 30]
    assert np.all(np.abs(out[2] - 127) <= 1)  # half-transparent black over white

    la = np.array([[[100, 0], [100, 255]]], np.uint8)
    Image.fromarray(la, "LA").save(tmp_path / "la.png")
    assert Image.open(tmp_path / "la.png").mode == "LA"
    np.testing.assert_array_equal(pixels(load_image(tmp_path / "la.png"))[0], [[255] * 3, [100] * 3])


def test_pa_composited_over_white():
    img = Image.fromarray(np.array([[0, 1]], np.uint8), "P")
    img.putpalette([200, 0, 0, 0, 200, 0] + [0] * (256 * 3 - 6))
    pa = img.convert("PA")
    pa.putdata([(0, 255), (1, 0)])
    assert pa.mode == "PA"
    t = image_to_tensor(pa)
    np.testing.assert_array_equal((t[0].permute(1, 2, 0) * 255).round().int().numpy()[0], [[200, 0, 0], [255] * 3])


def test_cmyk(tmp_path):
    cyan = Image.new("CMYK", (8, 8), (255, 0, 0, 0))
    cyan.save(tmp_path / "c.tif")
    cyan.save(tmp_path / "c.jpg", quality=95)
    assert Image.open(tmp_path / "c.tif").mode == "CMYK"
    assert pixels(load_image(tmp_path / "c.tif"))[0, 0].tolist() == [0, 255, 255]
    jpg = pixels(load_image(tmp_path / "c.jpg"))[4, 4].astype(int)
    assert np.all(np.abs(jpg - [0, 255, 255]) <= 8)


def test_ycbcr(tmp_path):
    rgb = Image.new("RGB", (8, 8), (200, 50, 100))
    rgb.convert("YCbCr").save(tmp_path / "y.tif")
    assert Image.open(tmp_path / "y.tif").mode == "YCbCr"
    out = pixels(load_image(tmp_path / "y.tif"))[0, 0].astype(int)
    assert np.all(np.abs(out - [200, 50, 100]) <= 3)


@pytest.mark.parametrize(("name", "mode"), [("g.png", "I;16"), ("g.tif", "I;16"), ("gb.tif", "I;16B")])
def test_16bit_grey_scaled_not_clipped(tmp_path, name, mode):
    values = np.array([[0, 255, 32768, 65535]], np.uint16)
    Image.frombytes(mode, (4, 1), values.astype(">u2" if mode.endswith("B") else "<u2").tobytes()).save(tmp_path / name)
    assert Image.open(tmp_path / name).mode.startswith("I;16")
    out = pixels(load_image(tmp_path / name))[0]
    np.testing.assert_array_equal(out[:, 0], [0, 0, 128, 255])
    assert np.all(out == out[:, :1])  # grey


def test_32bit_int_grey(tmp_path):
    Image.fromarray(np.array([[0, 32768, 65535]], np.int32), "I").save(tmp_path / "i16.tif")
    Image.fromarray(np.array([[-5, 2**30, 2**31 - 1]], np.int32), "I").save(tmp_path / "i32.tif")
    assert Image.open(tmp_path / "i16.tif").mode == "I"
    assert pixels(load_image(tmp_path / "i16.tif"))[0, :, 0].tolist() == [0, 128, 255]
    assert pixels(load_image(tmp_path / "i32.tif"))[0, :, 0].tolist() == [0, 128, 255]


def test_float_grey(tmp_path):
    Image.fromarray(np.array([[0.0, 0.5, 1.0]], np.float32), "F").save(tmp_path / "unit.tif")
    Image.fromarray(np.array([[0.0, 100.0, 300.0]], np.float32), "F").save(tmp_path / "byte.tif")
    assert Image.open(tmp_path / "unit.tif").mode == "F"
    assert pixels(load_image(tmp_path / "unit.tif"))[0, :, 0].tolist() == [0, 128, 255]
    assert pixels(load_image(tmp_path / "byte.tif"))[0, :, 0].tolist() == [0, 100, 255]


def test_16bit_rgb_and_rgba_png(tmp_path):
    rgb = np.array([[[65535, 0, 32768], [256, 65280, 0]]], np.uint16)
    write_png16(tmp_path / "rgb16.png", rgb, color_type=2)
    np.testing.assert_array_equal(pixels(load_image(tmp_path / "rgb16.png"))[0], [[255, 0, 128], [1, 255, 0]])
    rgba = np.array([[[65535, 0, 0, 0], [0, 0, 65535, 65535]]], np.uint16)
    write_png16(tmp_path / "rgba16.png", rgba, color_type=6)
    np.testing.assert_array_equal(pixels(load_image(tmp_path / "rgba16.png"))[0], [[255] * 3, [0, 0, 255]])


def test_multiframe_first_frame(tmp_path):
    frames = [Image.new("RGB", (6, 6), c) for c in [(255, 0, 0), (0, 255, 0), (0, 0, 255)]]
    frames[0].save(tmp_path / "a.gif", save_all=True, append_images=frames[1:])
    frames[0].save(tmp_path / "a.tif", save_all=True, append_images=frames[1:])
    assert getattr(Image.open(tmp_path / "a.gif"), "n_frames", 1) == 3
    assert getattr(Image.open(tmp_path / "a.tif"), "n_frames", 1) == 3
    assert pixels(load_image(tmp_path / "a.gif"))[2, 2].tolist() == [255, 0, 0]
    assert pixels(load_image(tmp_path / "a.tif"))[2, 2].tolist() == [255, 0, 0]


def test_exif_orientation_6(tmp_path):
    stored = Image.new("RGB", (40, 20), (255, 0, 0))  # w=40, h=20 as stored
    stored.paste((0, 255, 0), (0, 0, 8, 8))  # mark the stored top-left corner green
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to display
    stored.save(tmp_path / "o.jpg", quality=95, exif=exif)
    out = load_image(tmp_path / "o.jpg")
    assert out.size == (20, 40)  # transposed
    px = pixels(out).astype(int)
    # A clockwise quarter turn moves the top-left corner to the top-right.
    assert np.all(np.abs(px[3, 16] - [0, 255, 0]) <= 40)
    assert np.all(np.abs(px[3, 3] - [255, 0, 0]) <= 40)
    assert np.all(np.abs(px[36, 16] - [255, 0, 0]) <= 40)


def test_load_image_returns_detached_rgb(tmp_path):
    Image.new("L", (5, 7), 9).save(tmp_path / "a.png")
    img = load_image(tmp_path / "a.png")
    (tmp_path / "a.png").unlink()  # the returned image must not need the file any more
    assert img.mode == "RGB" and img.size == (5, 7) and img.getpixel((0, 0)) == (9, 9, 9)


# ----------------------------------------------------------------------------- errors


def assert_good_error(err: ImageError, path: Path) -> None:
    msg = str(err)
    assert isinstance(err, ValueError)
    assert str(path) in msg, msg
    assert "\n" not in msg and "\r" not in msg, msg
    assert msg.startswith(f"{path}: ") and len(msg) > len(f"{path}: ") + 5, msg


def make_bad_files(tmp_path: Path) -> dict[str, Path]:
    good = noise_image(200, 150)
    jpg, png = tmp_path / "full.jpg", tmp_path / "full.png"
    good.save(jpg, quality=90)
    good.save(png)
    files = {
        "corrupt": tmp_path / "corrupt.jpg",
        "truncated_jpg": tmp_path / "half.jpg",
        "truncated_png": tmp_path / "half.png",
        "text_png": tmp_path / "notes.png",
        "empty": tmp_path / "empty.png",
    }
    files["corrupt"].write_bytes(bytes(np.random.default_rng(1).integers(0, 256, 5000, dtype=np.uint8)))
    files["truncated_jpg"].write_bytes(jpg.read_bytes()[: jpg.stat().st_size // 2])
    files["truncated_png"].write_bytes(png.read_bytes()[: png.stat().st_size // 2])
    files["text_png"].write_text("this is not an image\nsecond line\n")
    files["empty"].write_bytes(b"")
    return files


@pytest.mark.parametrize("kind", ["corrupt", "truncated_jpg", "truncated_png", "text_png", "empty"])
def test_bad_files_raise_image_error(tmp_path, kind):
    path = make_bad_files(tmp_path)[kind]
    with pytest.raises(ImageError) as info:
        load_image(path)
    assert_good_error(info.value, path)
    with pytest.raises(ImageError):
        load_image_tensor(path, size=32)


def test_missing_path_and_directory(tmp_path):
    missing = tmp_path / "nope" / "x.png"
    with pytest.raises(ImageError) as info:
        load_image(missing)
    assert_good_error(info.value, missing)
    assert "no such file" in str(info.value)
    with pytest.raises(ImageError) as info:
        load_image(tmp_path)
    assert_good_error(info.value, tmp_path)
    assert "folder" in str(info.value)


def test_decompression_bomb_becomes_image_error(tmp_path, monkeypatch):
    Image.new("RGB", (64, 64)).save(tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    with pytest.raises(ImageError) as info:
        load_image(tmp_path / "big.png")
    assert_good_error(info.value, tmp_path / "big.png")
    assert "MAX_IMAGE_PIXELS" in str(info.value)


# ----------------------------------------------------------------------------- tensors


def test_image_to_tensor_matches_to_tensor():
    img = noise_image(17, 11)
    t = image_to_tensor(img)
    assert t.shape == (1, 3, 11, 17) and t.dtype == torch.float32
    assert 0.0 <= t.min() and t.max() <= 1.0
    np.testing.assert_array_equal((t[0] * 255).round().to(torch.uint8).permute(1, 2, 0).numpy(), np.asarray(img))
    transforms = pytest.importorskip("torchvision.transforms")
    torch.testing.assert_close(t, transforms.ToTensor()(img).unsqueeze(0), rtol=0, atol=0)


def test_tensor_round_trip_truncates(tmp_path):
    values = torch.tensor([0.999, 0.5, 0.0, 1.0, -0.2, 1.3, 0.25, 0.1])
    t = values.view(1, 1, 8).expand(3, 1, 8).clone()
    expected = [254, 127, 0, 255, 0, 255, 63, 25]
    img = tensor_to_image(t)
    assert img.mode == "RGB" and img.size == (8, 1)
    assert pixels(img)[0, :, 0].tolist() == expected
    assert pixels(img)[0, :, 0].tolist() == (values.clamp(0, 1) * 255).to(torch.uint8).tolist()
    path = save_image(t.unsqueeze(0), tmp_path / "out.png")
    assert path == tmp_path / "out.png"
    back = load_image_tensor(path)
    assert back.shape == (1, 3, 1, 8)
    assert (back[0, 0, 0] * 255).round().int().tolist() == expected


def test_tensor_to_image_rejects_bad_shapes():
    for shape in [(2, 3, 4, 4), (1, 4, 4, 4), (1, 4, 4), (4, 4), (1, 1, 3, 4, 4)]:
        with pytest.raises(ValueError, match=r"\(" + ", ".join(map(str, shape))):
            tensor_to_image(torch.zeros(shape))
    with pytest.raises(ValueError):
        tensor_to_image(torch.zeros(3, 4, 4, dtype=torch.uint8))


def test_tensor_to_image_accepts_grad_and_half():
    t = torch.full((1, 3, 2, 2), 0.5, requires_grad=True)
    assert tensor_to_image(t * 1).getpixel((0, 0)) == (127, 127, 127)
    assert tensor_to_image(torch.full((3, 2, 2), 0.5, dtype=torch.float16)).getpixel((1, 1)) == (127, 127, 127)


# ----------------------------------------------------------------------------- saving


def test_save_is_atomic_and_creates_parents(tmp_path, monkeypatch):
    target = tmp_path / "a" / "b" / "img.png"
    save_image(noise_image(), target)
    assert sorted(p.name for p in target.parent.iterdir()) == ["img.png"]
    before = target.read_bytes()

    def broken_save(self, fp, *args, **kwargs):
        Path(fp).write_bytes(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_image(noise_image(seed=3), target)
    assert target.read_bytes() == before  # the old file is untouched
    assert sorted(p.name for p in target.parent.iterdir()) == ["img.png"]  # no temp file left


def test_save_overwrites_and_formats(tmp_path):
    img = noise_image()
    png = save_image(img, tmp_path / "x.png")
    save_image(Image.new("RGB", img.size, (1, 2, 3)), png)
    assert load_image(png).getpixel((0, 0)) == (1, 2, 3)
    jpg = save_image(Image.new("RGBA", (16, 16), (0, 0, 255, 255)), tmp_path / "x.JPG")
    with Image.open(jpg) as f:
        assert f.format == "JPEG"
    assert np.all(np.abs(pixels(load_image(jpg))[8, 8].astype(int) - [0, 0, 255]) <= 4)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.JPG", "x.png"]
    with pytest.raises(ValueError, match="suffix"):
        save_image(img, tmp_path / "x.unknownext")


def test_save_jpeg_quality_95(tmp_path):
    img = noise_image(64, 64)
    save_image(img, tmp_path / "q.jpg")
    img.save(tmp_path / "ref95.jpg", quality=95)
    assert (tmp_path / "q.jpg").read_bytes() == (tmp_path / "ref95.jpg").read_bytes()


# ----------------------------------------------------------------------------- resizing


def test_resize_rules():
    img = noise_image(90, 60)  # w=90, h=60
    assert resize_image(img, None) is img
    assert resize_image(img, 32).size == (32, 32)
    assert resize_image(img, 32, keep_aspect=True).size == (48, 32)
    assert resize_image(noise_image(60, 90), 32, keep_aspect=True).size == (32, 48)
    assert resize_image(noise_image(100, 3), 2, keep_aspect=True).size == (67, 2)
    assert resize_image(noise_image(1000, 1), 1, keep_aspect=True).size == (1000, 1)
    assert resize_image(noise_image(7, 1000), 1, keep_aspect=True).size == (1, 143)
    assert resize_image(img, (20, 50)).size == (50, 20)  # (h, w)
    assert resize_image(img, (20, 50), keep_aspect=True).size == (50, 20)
    for bad in [0, -3, (0, 4), (1, 2, 3), 2.5, "64"]:
        with pytest.raises(ValueError):
            resize_image(img, bad)


def test_resize_is_bicubic_like_torchvision():
    img = noise_image(90, 60)
    np.testing.assert_array_equal(np.asarray(resize_image(img, 40)), np.asarray(img.resize((40, 40), Image.BICUBIC)))
    transforms = pytest.importorskip("torchvision.transforms")
    ref = transforms.Resize((40, 40), interpolation=transforms.InterpolationMode.BICUBIC)(img)
    np.testing.assert_array_equal(np.asarray(resize_image(img, 40)), np.asarray(ref))


def test_load_image_tensor_sizes(tmp_path):
    noise_image(90, 60).save(tmp_path / "a.png")
    assert load_image_tensor(tmp_path / "a.png").shape == (1, 3, 60, 90)
    assert load_image_tensor(tmp_path / "a.png", 32).shape == (1, 3, 32, 32)
    assert load_image_tensor(tmp_path / "a.png", 32, keep_aspect=True).shape == (1, 3, 32, 48)
    assert load_image_tensor(str(tmp_path / "a.png"), (10, 20)).shape == (1, 3, 10, 20)


# ----------------------------------------------------------------------------- listing


def touch_image(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (2, 2)).save(path, format="PNG")
    return path


def test_natural_key():
    names = ["frame10.png", "Frame2.png", "frame1.png", "frame02.png", "a", "a1", "1a", "B"]
    assert sorted(names, key=natural_key) == ["1a", "a", "a1", "B", "frame1.png", "Frame2.png", "frame02.png", "frame10.png"]
    assert natural_key("x2") < natural_key("x10")
    assert natural_key("ABC") != natural_key("abc")  # ties broken deterministically


def test_list_folder_natural_recursive_hidden(tmp_path):
    for name in ["frame10.png", "frame2.PNG", "frame1.jpg", "sub/frame3.webp", "sub10/a.png", "sub2/a.png"]:
        touch_image(tmp_path / name)
    touch_image(tmp_path / ".hidden.png")
    touch_image(tmp_path / ".cache" / "x.png")
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "noext").write_text("x")
    rel = [p.relative_to(tmp_path).as_posix() for p in list_images(tmp_path)]
    assert rel == ["frame1.jpg", "frame2.PNG", "frame10.png", "sub/frame3.webp", "sub2/a.png", "sub10/a.png"]
    assert all(isinstance(p, Path) for p in list_images(tmp_path))
    flat = [p.name for p in list_images(str(tmp_path), recursive=False)]
    assert flat == ["frame1.jpg", "frame2.PNG", "frame10.png"]


def test_list_single_file_and_mixed_sequence(tmp_path):
    a = touch_image(tmp_path / "single" / "z.png")
    folder = tmp_path / "dir"
    for name in ["b2.png", "b1.png"]:
        touch_image(folder / name)
    assert list_images(a) == [a]
    mixed = list_images([a, folder, str(a)])
    assert mixed == [a, folder / "b1.png", folder / "b2.png", a]
    assert list_images((folder,)) == [folder / "b1.png", folder / "b2.png"]


def test_list_errors(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("x")
    touch_image(empty / ".hidden.png")
    with pytest.raises(ImageError) as info:
        list_images(empty)
    assert_good_error(info.value, empty)
    assert "no images found" in str(info.value) and ".png" in str(info.value)

    missing = tmp_path / "missing"
    with pytest.raises(ImageError) as info:
        list_images([empty / "readme.txt", missing][1:])
    assert_good_error(info.value, missing)
    assert "no such file or folder" in str(info.value)

    with pytest.raises(ImageError) as info:
        list_images(empty / "readme.txt")
    assert_good_error(info.value, empty / "readme.txt")
    assert "unsupported" in str(info.value)

    nested_only = tmp_path / "nested"
    touch_image(nested_only / "deep" / "x.png")
    with pytest.raises(ImageError, match="no images found"):
        list_images(nested_only, recursive=False)
    with pytest.raises(ImageError):
        list_images([])


def test_extensions_constant():
    assert {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif", ".ppm", ".pgm", ".pbm"} == IMAGE_EXTENSIONS
    assert all(e == e.lower() and e.startswith(".") for e in IMAGE_EXTENSIONS)


# ----------------------------------------------------------------------------- shared assets


@pytest.mark.skipif(not SHARED_STYLE.is_dir(), reason=f"shared style images not present at {SHARED_STYLE}")
def test_shared_style_images_load():
    paths = list_images(SHARED_STYLE)
    assert paths
    for path in paths:
        t = load_image_tensor(path)
        assert t.dim() == 4 and t.shape[:2] == (1, 3) and t.shape[2] > 0 and t.shape[3] > 0, path
        assert t.dtype == torch.float32
        assert 0.0 <= float(t.min()) and float(t.max()) <= 1.0, path
        assert load_image_tensor(path, 64).shape == (1, 3, 64, 64)
