"""Optuna's own dashboard (the ``optuna-dashboard`` package) on a search's study, served in this process.

A search folder (:mod:`mixsize_ray.tune.search`) holds ``search.json`` with the study's ``study_name`` and
``storage_url`` (default ``sqlite:///<folder>/optuna.db``). :func:`load_target` reads and checks it and
opens the storage; :func:`bind` makes the HTTP server (optuna-dashboard's WSGI app, ``wsgi(storage)``, on
a threaded ``wsgiref`` server bound to loopback unless told otherwise); :func:`serve` runs it until Ctrl-C
(or SIGTERM, which the CLI turns into Ctrl-C) and closes the socket. No process is started, so none can
be left behind. Bad input is a one-line :class:`~mixsize_ray.errors.ConfigError` before anything binds,
and opening the storage creates nothing (no missing sqlite file, no tables).

Example:
    >>> import json, optuna, tempfile, threading, urllib.request
    >>> from pathlib import Path
    >>> folder = Path(tempfile.mkdtemp())
    >>> url = f"sqlite:///{folder / 'optuna.db'}"
    >>> optuna.logging.set_verbosity(optuna.logging.WARNING)
    >>> optuna.create_study(study_name="demo", storage=url).optimize(lambda t: t.suggest_float("x", 0, 1), 2)
    >>> _ = (folder / META).write_text(json.dumps({"study_name": "demo", "storage_url": url}))
    >>> target = load_target(folder)
    >>> target.study_name, target.study_id
    ('demo', 1)
    >>> server = bind(target, port=0)  # port 0: any free port (the CLI asks for one in 1..65535)
    >>> t = threading.Thread(target=serve, args=(server,), daemon=True); t.start()
    >>> page = dashboard_url(target, server)
    >>> page.startswith("http://127.0.0.1:") and page.endswith("/dashboard/studies/1")
    True
    >>> api = page.split("/dashboard")[0] + "/api/studies"
    >>> [s["study_name"] for s in json.load(urllib.request.urlopen(api))["study_summaries"]]
    ['demo']
    >>> server.shutdown(); t.join(5); target.storage.remove_session()
"""

from __future__ import annotations

import errno
import json
import socket
from dataclasses import dataclass
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from mixsize_ray.errors import ConfigError, one_line

META = "search.json"  # = tune.search.META (importing tune.search would load torch: this command does not)
LOOPBACK = "127.0.0.1"


@dataclass
class Target:
    """A search's study, ready to serve: ``storage`` is an open Optuna ``RDBStorage``."""

    folder: Path
    study_name: str
    storage_url: str
    storage: Any
    study_id: int


class _Server(ThreadingMixIn, WSGIServer):
    """One thread per request (the page fetches several API routes at once); the threads are daemons, so
    a stop never waits for a slow request."""

    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class' name
        pass  # no access log on the terminal: the one line the command prints is what matters


def read_meta(folder: str | Path) -> dict[str, str]:
    """``study_name`` and ``storage_url`` from ``folder/search.json``; a one-line ConfigError naming
    ``SEARCH_DIR`` when the folder, the file or its fields are missing or unreadable.

    Example:
        >>> read_meta("/nonexistent")
        Traceback (most recent call last):
        ...
        mixsize_ray.errors.ConfigError: SEARCH_DIR: expected an existing search folder (holding search.json), got '/nonexistent'
    """
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise ConfigError("SEARCH_DIR", f"an existing search folder (holding {META})", str(folder))
    path = folder / META
    if not path.is_file():
        raise ConfigError("SEARCH_DIR", f"a search folder holding {META} (made by `mixsize-ray tune`)",
                          str(folder), hint=f"no {META} there")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise ConfigError(str(path), "a readable JSON file", "unreadable", hint=one_line(e)) from None
    fields = ("study_name", "storage_url")
    if not isinstance(meta, dict) or not all(isinstance(meta.get(k), str) and meta[k] for k in fields):
        raise ConfigError(str(path), "a JSON object with study_name and storage_url strings",
                          {k: meta.get(k) for k in fields} if isinstance(meta, dict) else type(meta).__name__)
    return {k: meta[k] for k in fields}


def sqlite_file(url: str) -> Path | None:
    """The database file of a ``sqlite:///`` URL (None for other URLs and in-memory sqlite).

    Example:
        >>> sqlite_file("sqlite:////runs/tune/s-1/optuna.db"), sqlite_file("postgresql://h/db")
        (PosixPath('/runs/tune/s-1/optuna.db'), None)
    """
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
    except Exception:  # noqa: BLE001 - not a URL: open_storage says so
        return None
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def shown(url: str) -> str:
    """``url`` as printed: a password replaced by ``***``.

    Example:
        >>> shown("postgresql://me:secret@db:5432/optuna"), shown("sqlite:////a/optuna.db")
        ('postgresql://me:***@db:5432/optuna', 'sqlite:////a/optuna.db')
    """
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - not a URL: nothing to hide
        return url


def open_storage(url: str) -> Any:
    """An Optuna ``RDBStorage`` on ``url`` that creates nothing: a sqlite file must exist, and no table is
    made (``skip_table_creation``). Any failure is a one-line ConfigError naming the URL.
    (:func:`mixsize_ray.tune.searcher.open_storage` creates the storage of a new search, and imports Ray.)"""
    import optuna

    path = sqlite_file(url)
    if (url.startswith("sqlite") and path is None) or (path is not None and not path.is_file()):
        raise ConfigError("search.json storage_url", "an existing Optuna database", shown(url),
                          hint="no such file" if path is not None else "an in-memory database holds no study")
    try:
        return optuna.storages.RDBStorage(url, skip_table_creation=True)
    except Exception as e:  # noqa: BLE001 - any driver/connection/schema error means "cannot open"
        raise ConfigError("search.json storage_url", "an Optuna database that can be opened", shown(url),
                          hint=one_line(e)) from None


def load_target(folder: str | Path) -> Target:
    """Read ``folder/search.json``, open its storage and find its study. A sqlite URL whose file is gone
    but whose name is in ``folder`` (a search folder copied from another machine) uses the copy."""
    meta = read_meta(folder)
    folder = Path(folder).expanduser().resolve()
    url, path = meta["storage_url"], sqlite_file(meta["storage_url"])
    if path is not None and not path.is_file() and (folder / path.name).is_file():
        url = f"sqlite:///{folder / path.name}"
    storage = open_storage(url)
    try:
        study_id = storage.get_study_id_from_name(meta["study_name"])
    except KeyError:
        storage.remove_session()
        raise ConfigError("search.json study_name", f"a study in {shown(url)}", meta["study_name"]) from None
    return Target(folder, meta["study_name"], url, storage, study_id)


def bind(target: Target, host: str = LOOPBACK, port: int = 8080) -> WSGIServer:
    """The dashboard's HTTP server on ``host:port``, bound but not serving yet; a port in use or a host
    that is not this machine's is a one-line ConfigError."""
    from optuna_dashboard import wsgi

    try:
        return make_server(host, port, wsgi(target.storage), server_class=_Server, handler_class=_QuietHandler)
    except socket.gaierror as e:
        raise ConfigError("--host", "an address of this machine", host, hint=e.strerror) from None
    except OSError as e:
        if e.errno == errno.EADDRNOTAVAIL:
            raise ConfigError("--host", "an address of this machine", host, hint=e.strerror) from None
        raise ConfigError("--port", "a free port on the host", f"{host}:{port}", hint=e.strerror) from None


def dashboard_url(target: Target, server: WSGIServer) -> str:
    """The study's page on ``server``."""
    host, port = server.server_address[:2]
    return f"http://{host}:{port}/dashboard/studies/{target.study_id}"


def serve(server: WSGIServer) -> None:
    """Serve until ``server.shutdown()`` or KeyboardInterrupt (Ctrl-C; SIGTERM under the CLI), then close
    the listening socket; the KeyboardInterrupt propagates."""
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
