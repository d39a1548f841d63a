"""OpenLineage names (namespace, name) for what the operators read and write.

The rules follow OpenLineage's dataset naming conventions (openlineage.io/docs/spec/naming):

- a local file: namespace ``file``, name its absolute path; a file on another host (``file://host/p``):
  namespace ``file://host``;
- object stores: namespace ``scheme://bucket`` (``s3``, ``gs``; ``abfss``/``wasbs`` keep their
  ``container@account`` authority), name the object key (no leading ``/``);
- any other URL (``hdfs://namenode:8020/p``, ``sftp://host/p``): namespace ``scheme://authority``, name the
  path.

An HTTP API has no entry in those conventions; by the same rule (namespace = the data source, name =
the dataset within it) the API's origin is the namespace (``https://api.example.com``) and the
endpoint's path below the connection's base URL the name (``/v1/jobs``). A query string is dropped
whole: its values are filters, dates and ids that change per run (each run would name a new dataset)
and, in a careless URL, credentials. User information in any URL is dropped for the same reason.
:func:`without_secrets` uses these names for an output path that carries a password or a signature, so
the Asset an operator declares, its events, XCom and the logs never show them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

#: Schemes whose authority is a bucket (or container) and whose names are object keys.
OBJECT_STORES = {"s3": "s3", "s3a": "s3", "s3n": "s3", "gs": "gs", "gcs": "gs", "abfss": "abfss", "abfs": "abfs"}
OBJECT_STORES |= {"wasbs": "wasbs", "wasb": "wasb", "az": "az", "adl": "adl"}
#: Azure's ``container@account.dfs.core.windows.net``: there the part before ``@`` is the container. Anywhere
#: else it is user information (Airflow's ``ObjectStoragePath`` puts a connection id there): dropped.
AZURE_HOSTS = (".windows.net",)
DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class DatasetName:
    """An OpenLineage dataset identifier: the data source (namespace) and the dataset in it (name)."""

    namespace: str
    name: str

    @property
    def uri(self) -> str:
        """The namespace and name as one URI, as OpenLineage defines it (``scheme://authority`` + path)."""
        if self.namespace == "file":
            return f"file://{self.name}"
        separator = "" if self.name.startswith("/") else "/"
        return f"{self.namespace}{separator}{self.name}"


def _host_port(parts: SplitResult) -> str:
    """``host[:port]`` without user information, IPv6 literals in brackets, default ports left out."""
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = parts.port
    if port is not None and DEFAULT_PORTS.get(parts.scheme) != port:
        host = f"{host}:{port}"
    return host


def api_dataset(base_url: str, endpoint: str) -> DatasetName:
    """The API endpoint a task reads, as the hooks resolve it: ``endpoint`` appended to the base URL's
    path (an absolute ``endpoint`` stands alone), without query, fragment or user information."""
    target = urlsplit(endpoint)
    if target.scheme:
        origin, path = target, target.path
    else:
        origin = urlsplit(base_url)
        path = origin.path.rstrip("/") + "/" + target.path.lstrip("/")
    return DatasetName(f"{origin.scheme.lower()}://{_host_port(origin)}", path or "/")


def output_dataset(path: str) -> DatasetName:
    """The file or object a task writes (a local path, ``file://`` or an object-storage URL)."""
    parts = urlsplit(path)
    scheme = parts.scheme.lower()
    if not scheme or len(scheme) == 1:  # a local path (one letter: a Windows drive, C:\data)
        return DatasetName("file", os.path.abspath(path))
    if scheme == "file":
        host = _host_port(parts)
        if host in ("", "localhost"):
            return DatasetName("file", parts.path)
        return DatasetName(f"file://{host}", parts.path)
    if scheme in OBJECT_STORES:
        authority = parts.netloc.rsplit("@", 1)[-1]
        if parts.username and (parts.hostname or "").endswith(AZURE_HOSTS):  # the container, never a password
            authority = f"{parts.username}@{authority}"
        return DatasetName(f"{OBJECT_STORES[scheme]}://{authority}", parts.path.lstrip("/"))
    return DatasetName(f"{scheme}://{_host_port(parts)}", parts.path)


def without_secrets(path: str) -> str:
    """``path`` as an asset, a log line, an asset event or XCom may show it: as given, unless it is a URL
    with a password or a query or fragment (a signed URL's signature, a SAS token), which then goes the
    way :func:`output_dataset` names it, without them. A local path is never changed (its ``?`` or
    ``#`` is part of a file name)."""
    parts = urlsplit(path)
    if len(parts.scheme) <= 1 or (parts.password is None and not parts.query and not parts.fragment):
        return path
    try:
        return output_dataset(path).uri
    except ValueError:  # a malformed port: keep the scheme, the host and the path, and nothing else
        return f"{parts.scheme}://{parts.netloc.rsplit('@', 1)[-1]}{parts.path}"
