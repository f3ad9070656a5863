"""List and watch the API server with the `kubernetes` client, one thread per resource.

Each resource follows the API server's list/watch contract: list (paginated) and take the list's
`metadata.resourceVersion`; watch from it with `allowWatchBookmarks`, advancing the version with
every event and BOOKMARK; when the server ends a watch (its timeout), watch again from the last
version; on `410 Gone` (the version was compacted away) list again; on any other failure
(connection refused or dropped, 5xx) retry with capped exponential backoff and jitter, so a
restarted API server is not hit by every node at once.

Objects stay raw JSON (`_preload_content=False`): the compiler's front end parses and validates
them as it does manifests, and no time goes into the client's model classes.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import queue
import random
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.incluster_config import InClusterConfigLoader
from kubernetes.watch.watch import iter_resp_lines

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Resource:
    kind: str
    api_version: str
    api: str  # the client's API class
    method: str  # its cluster-wide list method
    args: tuple[str, ...] = ()
    """Leading arguments of the method (a custom resource's group, version and plural)."""
    optional: bool = False
    """A CustomResourceDefinition that may not be installed: a 404 means "not served" (said once;
    the kind is then known empty and asked again at the longest backoff), not a failure."""


def _crd(kind: str, version: str, plural: str) -> Resource:
    group = "policy.networking.k8s.io"
    return Resource(kind, f"{group}/{version}", "CustomObjectsApi", "list_cluster_custom_object",
                    (group, version, plural), optional=True)  # fmt: skip


RESOURCES = (
    Resource("Namespace", "v1", "CoreV1Api", "list_namespace"),
    Resource("Pod", "v1", "CoreV1Api", "list_pod_for_all_namespaces"),
    Resource("Service", "v1", "CoreV1Api", "list_service_for_all_namespaces"),
    Resource(
        "EndpointSlice", "discovery.k8s.io/v1", "DiscoveryV1Api", "list_endpoint_slice_for_all_namespaces"
    ),
    Resource(
        "NetworkPolicy", "networking.k8s.io/v1", "NetworkingV1Api", "list_network_policy_for_all_namespaces"
    ),
    Resource("Node", "v1", "CoreV1Api", "list_node"),
    _crd("AdminNetworkPolicy", "v1alpha1", "adminnetworkpolicies"),
    _crd("BaselineAdminNetworkPolicy", "v1alpha1", "baselineadminnetworkpolicies"),
    _crd("ClusterNetworkPolicy", "v1alpha2", "clusternetworkpolicies"),
    Resource("Endpoints", "v1", "CoreV1Api", "list_endpoints_for_all_namespaces"),
)
"""Endpoints last: the compiler uses them only for a Service without any EndpointSlice. The loader
watches one of EndpointSlice and Endpoints, never both (`watched_kinds`). Nodes give `nodes` peers
of the cluster policy tiers their addresses; the tiers' CRDs are watched where they are served."""


@dataclass(frozen=True, slots=True)
class Listed:
    """A complete list of one kind: replaces everything known of that kind."""

    kind: str
    items: list[dict[str, Any]]
    resource_version: str


@dataclass(frozen=True, slots=True)
class Event:
    kind: str
    type: str  # ADDED | MODIFIED | DELETED
    obj: dict[str, Any]


@dataclass
class WatchConfig:
    page_size: int = 500
    watch_timeout: int = 300  # seconds the server keeps one watch open
    read_timeout: float = 360.0  # no byte for this long (not even a BOOKMARK): the connection is dead
    connect_timeout: float = 10.0
    backoff_initial: float = 0.2
    backoff_max: float = 30.0
    kinds: Sequence[str] | None = None  # None: every kind but one of EndpointSlice/Endpoints (watched_kinds)


def watched_kinds(api_client: Any, timeout: float = 10.0) -> tuple[str, ...]:
    """What the loader lists and watches: EndpointSlices wherever the API server serves
    discovery.k8s.io/v1 (every release since 1.21), as kube-proxy does, never v1 Endpoints too:
    the EndpointSlice mirroring controller already turns custom Endpoints into slices. Only a
    server that answers 404 for that group version gets Endpoints watched instead.

    Discovery needs no RBAC rule of ours (the default system:discovery role allows it). An
    unreachable server counts as serving slices; the watches then retry as usual.
    """
    try:
        resources = k8s.DiscoveryV1Api(api_client).get_api_resources(_request_timeout=timeout)
        served = any(r.name == "endpointslices" for r in resources.resources or [])
    except ApiException as err:
        served = err.status != 404
    except Exception as err:  # connection refused, DNS, TLS: the watches will report and retry
        log.warning("API discovery failed (%s); watching EndpointSlices", err)
        served = True
    dropped = "Endpoints" if served else "EndpointSlice"
    return tuple(r.kind for r in RESOURCES if r.kind != dropped)


# Where the kubelet mounts a pod's service account (token, CA bundle, namespace).
SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


def api_client(
    kubeconfig: str | None = None,
    context: str | None = None,
    *,
    service_account_dir: str = SERVICE_ACCOUNT_DIR,
    environ: Mapping[str, str] | None = None,
) -> Any:
    """A client from a kubeconfig file, or the in-cluster service account when none is given.

    In cluster: HTTPS to `KUBERNETES_SERVICE_HOST:KUBERNETES_SERVICE_PORT`, the server checked
    against the mounted `ca.crt`, the mounted `token` as bearer token. The client re-reads the
    token file every minute, so the kubelet's rotation of bound tokens needs no restart.
    """
    if kubeconfig:
        return k8s_config.new_client_from_config(config_file=kubeconfig, context=context)  # type: ignore[no-untyped-call]
    cfg = k8s.Configuration()
    loader = InClusterConfigLoader(  # type: ignore[no-untyped-call]
        token_filename=os.path.join(service_account_dir, "token"),
        cert_filename=os.path.join(service_account_dir, "ca.crt"),
        environ=os.environ if environ is None else environ,
    )
    loader.load_and_set(cfg)  # type: ignore[no-untyped-call]
    return k8s.ApiClient(cfg)


def backoff(attempt: int, initial: float, cap: float) -> float:
    """Capped exponential backoff, each step jittered to 50-100 %."""
    step = min(cap, initial * 2.0 ** max(0, attempt - 1))
    return step * random.uniform(0.5, 1.0)


class Gone(Exception):
    """410: the resource version is too old; list again."""


class ResourceWatch:
    """Keeps one kind flowing into `out` until `stop` is set."""

    def __init__(
        self,
        api_client: Any,
        resource: Resource,
        out: queue.Queue[Listed | Event],
        config: WatchConfig,
        stop: threading.Event,
    ) -> None:
        self.resource = resource
        self.out = out
        self.config = config
        self.stop = stop
        self.list_fn: Callable[..., Any] = functools.partial(
            getattr(getattr(k8s, resource.api)(api_client), resource.method), *resource.args
        )
        self.not_served = False
        """An optional resource the server answered 404 for (said once in the log)."""
        self.resource_version: str | None = None
        self.lists = 0
        self.watches = 0
        self.failures = 0
        self._response: Any = None
        self.thread = threading.Thread(target=self.run, name=f"watch-{resource.kind}", daemon=True)

    def _timeout(self) -> tuple[float, float]:
        return (self.config.connect_timeout, self.config.read_timeout)

    def list(self) -> None:
        items: list[dict[str, Any]] = []
        cont: str | None = None
        while True:
            kwargs: dict[str, Any] = {"limit": self.config.page_size}
            if cont:
                kwargs["_continue"] = cont
            resp = self.list_fn(_preload_content=False, _request_timeout=self._timeout(), **kwargs)
            try:
                body = json.loads(resp.data)
            finally:
                resp.release_conn()
            for item in body.get("items") or []:
                # The API server omits kind and apiVersion on list items.
                item.setdefault("kind", self.resource.kind)
                item.setdefault("apiVersion", self.resource.api_version)
                items.append(item)
            meta = body.get("metadata") or {}
            cont = meta.get("continue")
            if not cont:
                break
        self.resource_version = str(meta.get("resourceVersion", ""))
        self.lists += 1
        self.not_served = False
        self.out.put(Listed(self.resource.kind, items, self.resource_version))

    def watch(self) -> None:
        """One watch request, until the server ends it. Raises Gone on 410."""
        self.watches += 1
        resp = self.list_fn(
            watch=True,
            resource_version=self.resource_version,
            allow_watch_bookmarks=True,
            timeout_seconds=self.config.watch_timeout,
            _preload_content=False,
            _request_timeout=self._timeout(),
        )
        self._response = resp
        try:
            for line in iter_resp_lines(resp):  # type: ignore[no-untyped-call]
                if self.stop.is_set():
                    return
                event = json.loads(line)
                kind = event.get("type")
                obj = event.get("object") or {}
                if kind == "ERROR":
                    if obj.get("code") == 410:
                        raise Gone(obj.get("message", "410 Gone"))
                    raise ApiException(status=obj.get("code", 500), reason=obj.get("message", "watch error"))
                version = (obj.get("metadata") or {}).get("resourceVersion")
                if kind in ("ADDED", "MODIFIED", "DELETED"):
                    obj.setdefault("kind", self.resource.kind)
                    obj.setdefault("apiVersion", self.resource.api_version)
                    self.out.put(Event(self.resource.kind, kind, obj))
                if version:  # every event and BOOKMARK moves us forward
                    self.resource_version = str(version)
        finally:
            self._response = None
            resp.release_conn()

    def run(self) -> None:
        attempt = 0
        while not self.stop.is_set():
            try:
                if self.resource_version is None:
                    self.list()
                self.watch()
                attempt = 0  # the server closed a healthy watch: resume at once
            except Gone as err:
                log.info("%s: %s; listing again", self.resource.kind, err)
                self.resource_version = None
            except ApiException as err:
                if err.status == 410:
                    self.resource_version = None
                    continue
                if err.status == 404 and self.resource.optional:
                    self._not_served()
                    continue
                attempt = self._fail(attempt, err)
            except Exception as err:  # connection refused, reset, read timeout, bad JSON
                attempt = self._fail(attempt, err)

    def _not_served(self) -> None:
        """The CRD is not installed: the kind is empty (a list of nothing, so the source gets
        ready and forgets what it had), said once; asked again at the longest backoff, so a CRD
        installed later is picked up."""
        if not self.not_served:
            self.not_served = True
            log.warning(
                "%s (%s) is not served by the API server (its CRD is not installed): running without it",
                self.resource.kind,
                self.resource.api_version,
            )
            self.out.put(Listed(self.resource.kind, [], ""))
        self.resource_version = None
        self.stop.wait(self.config.backoff_max)

    def _fail(self, attempt: int, err: BaseException) -> int:
        if self.stop.is_set():
            return attempt
        self.failures += 1
        attempt += 1
        delay = backoff(attempt, self.config.backoff_initial, self.config.backoff_max)
        log.warning("%s watch failed (%s); retrying in %.2fs", self.resource.kind, err, delay)
        self.stop.wait(delay)
        return attempt

    def close(self) -> None:
        resp = self._response
        if resp is not None:
            with contextlib.suppress(Exception):  # a socket shut mid-read may complain; it closes anyway
                resp.shutdown()


class ClusterWatch:
    """All kinds into one queue; `listed` holds the kinds whose first list arrived."""

    def __init__(self, api_client: Any, config: WatchConfig | None = None) -> None:
        self.config = config or WatchConfig()
        self.kinds = tuple(self.config.kinds) if self.config.kinds is not None else watched_kinds(api_client)
        self.queue: queue.Queue[Listed | Event] = queue.Queue()
        self.stop = threading.Event()
        by_kind = {r.kind: r for r in RESOURCES}
        self.watches = [
            ResourceWatch(api_client, by_kind[k], self.queue, self.config, self.stop) for k in self.kinds
        ]

    def start(self) -> ClusterWatch:
        for w in self.watches:
            w.thread.start()
        return self

    def close(self) -> None:
        self.stop.set()
        for w in self.watches:
            w.close()
        for w in self.watches:
            w.thread.join(timeout=5)
