"""Where a work directory lives: a local path, or a Hadoop-style URI (``s3a://bucket/prefix``,
``hdfs://namenode/path``) on a cluster.

Spark reads and writes the lake at the URI itself (``jobs.session.storage_settings`` gives it the
s3a endpoint and region from the environment; credentials stay with the AWS SDK's own chain: the
standard variables, a profile or the instance's role, never a Spark setting the UI would show).
Python code reaches the same files through fsspec (``filesystem``), configured from the same
variables, so a rank writes its checkpoints and a second process reads gold without Spark.

Files that a library can only write to a local directory (Great Expectations' store, the
tokenizer's ``save_pretrained``, the report while a stage runs) are kept in ``WorkDir.local``,
a staging copy pulled from the URI when a command starts and pushed back when a stage ends.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

S3_SCHEMES = ("s3a", "s3", "s3n")
STAGED = (
    "report.json",
    "tuning",
    "predict_report.json",
    "tokenizer",
    "validation",
)  # what WorkDir.local mirrors of a remote work dir


def is_remote(where: str | Path) -> bool:
    """A URI with a scheme other than ``file:`` (a Windows drive letter is not a scheme here)."""
    scheme = urlsplit(str(where)).scheme
    return len(scheme) > 1 and scheme != "file"


def _local(where: str | Path) -> Path:
    text = str(where)
    return Path(urlsplit(text).path if text.startswith("file:") else text)


def join(where: str | Path, *parts: str) -> str:
    """``where/part/...`` as a string: a URI stays a URI, a local path stays a path."""
    if is_remote(where):
        return "/".join([str(where).rstrip("/"), *parts])
    return str(_local(where).joinpath(*parts))


def fsspec_options(where: str) -> dict:
    """fsspec's options for ``where``: for S3, the endpoint and region of the standard variables
    (``AWS_ENDPOINT_URL``, ``AWS_REGION``) with path-style addressing for an S3-compatible store;
    the keys come from the SDK's chain (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, ...)."""
    if urlsplit(where).scheme not in S3_SCHEMES:
        return {}
    client, options = {}, {"use_listings_cache": False}
    if os.environ.get("AWS_ENDPOINT_URL"):
        client["endpoint_url"] = os.environ["AWS_ENDPOINT_URL"]
        options["config_kwargs"] = {"s3": {"addressing_style": "path"}}
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if region:
        client["region_name"] = region
    return {**options, "client_kwargs": client} if client else options


def filesystem(where: str | Path):
    """``(fsspec file system, path within it)`` for a local path or a URI."""
    import fsspec

    if not is_remote(where):
        return fsspec.filesystem("file"), str(_local(where))
    try:
        return fsspec.core.url_to_fs(str(where), **fsspec_options(str(where)))
    except ImportError as exc:  # fsspec names the package, not the extra
        raise ImportError(f"{where}: {exc} (for S3: pip install 'tokenlake[s3]')") from exc


@contextlib.contextmanager
def parquet_file(where: str | Path):
    """``where`` as a ``pyarrow.parquet.ParquetFile`` that is safe to read just before the process
    exits. pyarrow's threads, reading through a Python file object, can outlive the read and abort
    the interpreter at exit (apache/arrow#33975: "terminate called without an active exception",
    exit 134 in 6 of 10 runs here): a local file is opened by pyarrow itself, a remote one through
    fsspec with its reads on the calling thread."""
    import pyarrow.parquet as pq

    class OnThisThread(pq.ParquetFile):
        def read(self, *args, **kwargs):
            return super().read(*args, **{**kwargs, "use_threads": False})

        def read_row_group(self, *args, **kwargs):
            return super().read_row_group(*args, **{**kwargs, "use_threads": False})

        def read_row_groups(self, *args, **kwargs):
            return super().read_row_groups(*args, **{**kwargs, "use_threads": False})

        def iter_batches(self, *args, **kwargs):
            return super().iter_batches(*args, **{**kwargs, "use_threads": False})

    if not is_remote(where):
        with pq.ParquetFile(str(_local(where))) as parquet:
            yield parquet
        return
    fs, path = filesystem(where)
    with fs.open(path, "rb") as handle, OnThisThread(handle) as parquet:
        yield parquet


def exists(where: str | Path) -> bool:
    fs, path = filesystem(where)
    return fs.exists(path)


def is_file(where: str | Path) -> bool:
    fs, path = filesystem(where)
    return fs.isfile(path)


def read_bytes(where: str | Path) -> bytes:
    fs, path = filesystem(where)
    return fs.cat_file(path)


def read_text(where: str | Path) -> str:
    return read_bytes(where).decode()


def write_bytes(where: str | Path, data: bytes) -> None:
    """Write a whole file, atomically: a reader sees the old content or the new, never a part
    (locally a temporary file renamed over it; an object store's PUT is atomic already)."""
    if is_remote(where):
        fs, path = filesystem(where)
        fs.pipe_file(path, data)
        return
    path = _local(where)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def write_text(where: str | Path, text: str) -> None:
    write_bytes(where, text.encode())


def remove(where: str | Path) -> None:
    """Delete a file or a whole directory; nothing there is fine."""
    if not is_remote(where):
        path = _local(where)
        shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
        return
    fs, path = filesystem(where)
    if fs.exists(path):
        fs.rm(path, recursive=True)


def names(where: str | Path) -> list[str]:
    """The names of the entries directly under ``where`` (none if it does not exist)."""
    fs, path = filesystem(where)
    if not fs.isdir(path):
        return []
    return sorted(p.rstrip("/").rsplit("/", 1)[-1] for p in fs.ls(path, detail=False))


def upload(local: Path, where: str | Path) -> None:
    """Copy the file or directory ``local`` to ``where``, replacing what was there (removing it
    when ``local`` does not exist)."""
    if not local.is_file():  # a file's copy replaces the old one at once
        remove(where)
    if not local.exists():
        return
    if not is_remote(where):
        (shutil.copytree if local.is_dir() else shutil.copyfile)(local, _local(where))
        return
    fs, path = filesystem(where)
    if local.is_file():
        fs.put_file(str(local), path)
        return
    for file in sorted(p for p in local.rglob("*") if p.is_file()):
        fs.put_file(str(file), f"{path}/{file.relative_to(local).as_posix()}")


def download(where: str | Path, local: Path) -> None:
    """Copy the file or directory at ``where`` to ``local``, replacing what was there (removing
    it when ``where`` holds nothing)."""
    shutil.rmtree(local, ignore_errors=True) if local.is_dir() else local.unlink(missing_ok=True)
    fs, path = filesystem(where)
    if fs.isfile(path):
        local.parent.mkdir(parents=True, exist_ok=True)
        fs.get_file(path, str(local))
        return
    for file in fs.find(path):
        target = local / file[len(path) :].lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        fs.get_file(file, str(target))


@contextlib.contextmanager
def local_dir(where: str | Path, *, read: bool = False):
    """A local directory standing for ``where``, for libraries that only take local paths
    (``save_pretrained``, ``from_pretrained``): ``where`` itself when local; else a temporary
    directory, filled from ``where`` first (``read``) or uploaded to it at the end (written)."""
    if not is_remote(where):
        yield _local(where)
        return
    with tempfile.TemporaryDirectory(prefix="tokenlake-") as tmp:
        if read:
            download(where, Path(tmp))
            yield Path(tmp)
        else:
            yield Path(tmp)
            upload(Path(tmp), where)


def umask_modes(directory: Path) -> None:
    """Give the files under ``directory`` the mode a plain ``open`` would (``0o666`` less the umask),
    where a library wrote them private (``0600``)."""
    mask = os.umask(0)
    os.umask(mask)
    for path in directory.rglob("*"):
        if path.is_file():
            path.chmod(0o666 & ~mask)


def staging_root() -> Path:
    return Path(os.environ.get("TOKENLAKE_STAGING", Path.home() / ".cache" / "tokenlake" / "staging"))


LOCK_FILE = ".tokenlake.lock"


class WorkDirBusy(RuntimeError):
    """Another run holds the work directory."""


@dataclass(frozen=True)
class WorkDir:
    """A work directory: ``uri`` is where everything lives (an absolute local path or a URI);
    ``local`` is the same directory when it is local, else its staging copy on this machine,
    which holds ``STAGED`` and the local MLflow store."""

    uri: str
    local: Path

    @classmethod
    def of(cls, where: WorkDir | str | Path) -> WorkDir:
        if isinstance(where, WorkDir):
            return where
        if not is_remote(where):
            path = _local(where).resolve()
            return cls(str(path), path)
        uri = str(where).rstrip("/")
        return cls(uri, staging_root() / hashlib.sha256(uri.encode()).hexdigest()[:16])

    @property
    def remote(self) -> bool:
        return is_remote(self.uri)

    def path(self, *parts: str) -> str:
        """``parts`` under the work directory itself (where Spark and the ranks write)."""
        return join(self.uri, *parts)

    def published(self, local: str | Path) -> str:
        """The path under ``uri`` of a file of the staging copy (itself, for a local work dir)."""
        relative = Path(local).resolve().relative_to(self.local.resolve())
        return self.path(*relative.parts) if self.remote else str(local)

    def staged(self, published: str | None) -> Path | None:
        """The staging copy's file for a path that ``published`` gave (None for None)."""
        if not published:
            return None
        if not self.remote:
            return Path(published)
        prefix = self.uri + "/"
        return self.local / published[len(prefix) :] if published.startswith(prefix) else None

    def pull(self) -> None:
        """Refresh the staging copy of ``STAGED`` from the URI (nothing to do when local)."""
        if self.remote:
            self.local.mkdir(parents=True, exist_ok=True)
            for name in STAGED:
                download(self.path(name), self.local / name)

    def push(self) -> None:
        """Publish the staging copy of ``STAGED`` at the URI (nothing to do when local)."""
        if self.remote:
            for name in STAGED:
                upload(self.local / name, self.path(name))

    @contextlib.contextmanager
    def lock(self):
        """Hold the work directory for one run: a second run on it (on this machine) fails at once
        with ``WorkDirBusy`` instead of racing this one over the tables and the report. The lock
        is the OS's (``flock`` on ``LOCK_FILE``), so a killed run leaves none behind. A remote work
        dir is locked through its staging copy: runs on other machines are not seen."""
        import fcntl

        self.local.mkdir(parents=True, exist_ok=True)
        path = self.local / LOCK_FILE
        with open(path, "a+") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                fh.seek(0)
                holder = fh.read().strip() or "another process"
                raise WorkDirBusy(
                    f"{self.uri} is in use by another tokenlake run ({holder}): wait for it to end, "
                    "or use another --work"
                ) from None
            fh.seek(0)
            fh.truncate()
            fh.write(f"pid {os.getpid()}")
            fh.flush()
            try:
                yield
            finally:
                fh.seek(0)
                fh.truncate()  # the lock itself goes with the file's close
