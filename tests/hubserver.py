"""A Hugging Face Hub-compatible server on loopback, for tests.

Reads are served by `olah <https://pypi.org/project/olah/>`_ (a Hub mirror that can serve git-backed
repositories with real branches and tags); this module adds the small write layer the Hub client
needs and nothing else:

====================================================  =========================================
route                                                 client call (huggingface_hub 2.4)
====================================================  =========================================
``POST /api/repos/create``, ``DELETE /api/repos/delete``  ``create_repo``, ``delete_repo``
``GET /api/whoami-v2``, ``POST /api/validate-yaml``   ``whoami``, README checks in ``create_commit``
``POST /api/{type}/{org}/{repo}/preupload/{rev}``     ``create_commit`` (regular vs LFS upload mode)
``POST /{type}/{org}/{repo}.git/info/lfs/objects/batch``  LFS batch (basic transfer)
``PUT /_lfs/{oid}``, ``POST /_lfs/{oid}/verify``      LFS upload and verify
``POST /api/{type}/{org}/{repo}/commit/{rev}``        NDJSON commit (file, lfsFile, deletedFile, deletedFolder)
``POST|DELETE /api/{type}/{org}/{repo}/branch/{b}``   ``create_branch``, ``delete_branch``
``POST /api/{type}/{org}/{repo}/tag/{rev}``, ``DELETE .../tag/{t}``  ``create_tag``, ``delete_tag``
====================================================  =========================================

plus three read routes olah does not answer from a local git mirror (repo info without a revision,
the tree at the repository root, and a proper ``EntryNotFound``/``RevisionNotFound`` for a missing
file or revision). Everything else (``list_repo_refs``, ``repo_info(revision=…)``, ``list_repo_tree``,
``get_paths_info``, ``list_repo_commits``, ``hf_hub_download``, ``HfFileSystem``, ``load_dataset``) is
olah reading the git repositories.

Storage: one non-bare git repository per Hub repo at ``<root>/<type>s/<org>/<name>`` (olah's
``mirrors_path`` layout) whose working tree is never checked out: commits are built with git plumbing
on a temporary index, and LFS objects live in ``.git/lfs/objects/<aa>/<bb>/<oid>`` behind standard
pointer files, as olah expects.

How clients reach it. ``huggingface_hub`` reads ``HF_ENDPOINT`` once, at import time, so a client
must be configured *before* it imports ``huggingface_hub``/``datasets``. Tests therefore run every
client in a subprocess with :meth:`HubServer.client_env` (``HF_ENDPOINT``, ``HF_HUB_DISABLE_XET=1``,
``HF_TOKEN``, an isolated ``HF_HOME``, offline-safe defaults) — see :func:`run_client`. The server
itself runs in a thread of the test process and binds 127.0.0.1 only.

Usage in tests::

    from tests.hubserver import hub_server, run_client  # noqa: F401  (hub_server is a fixture)

    def test_roundtrip(hub_server, tmp_path):
        env = hub_server.client_env(tmp_path / "hf_home")
        run_client("from huggingface_hub import HfApi; HfApi().create_repo('me/x', repo_type='dataset')", env)

Manual use: ``python -m tests.hubserver --root /tmp/hub --port 8765`` prints the environment to export.
"""

from __future__ import annotations

import argparse
import base64
import fnmatch
import hashlib
import json
import logging
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

# Module level on purpose: FastAPI resolves the (postponed) annotations of route handlers in this
# module's globals.
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

logger = logging.getLogger(__name__)

#: Token used by tests unless they choose their own. The server accepts any non-empty bearer token.
DEFAULT_TEST_TOKEN = "hf_treecot_loopback_test_token"
#: The user every token belongs to.
TEST_USER = "treecot-tester"

_ZERO_SHA = "0" * 40
_LFS_POINTER = "version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize {size}\n"
_LFS_POINTER_RE = re.compile(
    r"^version https://git-lfs\.github\.com/spec/v1\noid sha256:([0-9a-f]{64})\nsize (\d+)\n$"
)
#: Files larger than this are always stored with LFS (the Hub's rule is 10 MB).
_LFS_SIZE_THRESHOLD = 10 * 1024 * 1024
#: The `.gitattributes` the Hub writes into every new repository (abridged to the common patterns).
_DEFAULT_GITATTRIBUTES = "".join(
    f"{pattern} filter=lfs diff=lfs merge=lfs -text\n"
    for pattern in (
        "*.7z", "*.arrow", "*.bin", "*.bz2", "*.ckpt", "*.ftz", "*.gz", "*.h5", "*.joblib", "*.lfs.*",
        "*.mlmodel", "*.model", "*.msgpack", "*.npy", "*.npz", "*.onnx", "*.ot", "*.parquet", "*.pb",
        "*.pickle", "*.pkl", "*.pt", "*.pth", "*.rar", "*.safetensors", "saved_model/**/*", "*.tar.*",
        "*.tar", "*.tflite", "*.tgz", "*.wasm", "*.xz", "*.zip", "*.zst", "*tfevents*", "*.png", "*.jpg",
        "*.jpeg", "*.webp", "*.gif", "*.mp3", "*.wav", "*.ogg",
    )
)  # fmt: skip
_REPO_TYPES = {"model": "models", "dataset": "datasets", "space": "spaces"}
_VALID_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
_VALID_REF = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class HubError(Exception):
    """An error answered to the client as a Hub-style JSON error with ``X-Error-Code``."""

    def __init__(self, status: int, message: str, code: str | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code


# --------------------------------------------------------------------------------------------------
# Git storage
# --------------------------------------------------------------------------------------------------


class GitRepoStore:
    """Hub repositories as git repositories under ``root`` (``<root>/<type>s/<org>/<name>``).

    All writes take one lock per store, so concurrent commits to the same branch are serialised;
    branch updates use ``git update-ref <new> <old>`` so a stale ``parentCommit`` can never win.
    """

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("GIT_")},
            "GIT_AUTHOR_NAME": TEST_USER,
            "GIT_AUTHOR_EMAIL": f"{TEST_USER}@localhost",
            "GIT_COMMITTER_NAME": TEST_USER,
            "GIT_COMMITTER_EMAIL": f"{TEST_USER}@localhost",
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
            "GIT_TERMINAL_PROMPT": "0",
        }

    # -- paths and low-level git ------------------------------------------------------------------

    def path(self, repo_type: str, repo_id: str) -> Path:
        return self.root / repo_type / repo_id

    def lfs_path(self, repo_type: str, repo_id: str, oid: str) -> Path:
        return self.path(repo_type, repo_id) / ".git" / "lfs" / "objects" / oid[:2] / oid[2:4] / oid

    def _git(
        self, repo: Path, *args: str, input: bytes | None = None, env: dict | None = None, check: bool = True
    ) -> str:
        proc = subprocess.run(
            ["git", "-C", str(repo), *args],
            input=input,
            capture_output=True,
            env={**self._env, **(env or {})},
        )
        if check and proc.returncode != 0:
            raise RuntimeError(
                f"git {' '.join(args)} failed in {repo}: {proc.stderr.decode(errors='replace')}"
            )
        return proc.stdout.decode()

    def exists(self, repo_type: str, repo_id: str) -> bool:
        return (self.path(repo_type, repo_id) / ".git").is_dir()

    def require(self, repo_type: str, repo_id: str) -> Path:
        if not self.exists(repo_type, repo_id):
            raise HubError(404, f"Repository not found: {repo_type}/{repo_id}", "RepoNotFound")
        return self.path(repo_type, repo_id)

    def resolve(self, repo_type: str, repo_id: str, revision: str) -> str | None:
        """The commit sha a branch, tag or (full) commit sha points to, or None."""
        repo = self.require(repo_type, repo_id)
        for candidate in (f"refs/heads/{revision}", f"refs/tags/{revision}", revision):
            out = self._git(repo, "rev-parse", "--verify", "--quiet", f"{candidate}^{{commit}}", check=False)
            if out.strip():
                return out.strip()
        return None

    def require_revision(self, repo_type: str, repo_id: str, revision: str) -> str:
        sha = self.resolve(repo_type, repo_id, revision)
        if sha is None:
            raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        return sha

    def list_files(self, repo_type: str, repo_id: str, revision: str) -> dict[str, tuple[str, str]]:
        """``{path: (blob_sha, content_or_pointer_oid)}`` of every file at ``revision``.

        The second element is the sha256 of an LFS file (as the Hub reports it) or the git blob sha.
        """
        repo = self.require(repo_type, repo_id)
        sha = self.require_revision(repo_type, repo_id, revision)
        files: dict[str, tuple[str, str]] = {}
        for line in self._git(repo, "ls-tree", "-r", "-l", sha).splitlines():
            meta, path = line.split("\t", 1)
            _mode, _kind, blob, size = meta.split()
            oid = blob
            if 120 < int(size) < 150:
                match = _LFS_POINTER_RE.match(self._git(repo, "cat-file", "blob", blob))
                if match:
                    oid = match.group(1)
            files[path] = (blob, oid)
        return files

    # -- repository and ref operations ----------------------------------------------------------------

    def create(self, repo_type: str, repo_id: str) -> None:
        with self._lock:
            if self.exists(repo_type, repo_id):
                raise HubError(
                    409, f"You already created this {repo_type[:-1]} repo: {repo_id}", "RepoExists"
                )
            repo = self.path(repo_type, repo_id)
            repo.mkdir(parents=True, exist_ok=True)
            self._git(repo, "init", "--quiet", "--initial-branch=main")
            self.commit(
                repo_type,
                repo_id,
                "main",
                [("add", ".gitattributes", _DEFAULT_GITATTRIBUTES.encode(), False)],
                summary="initial commit",
                allow_unborn=True,
            )

    def delete(self, repo_type: str, repo_id: str) -> None:
        with self._lock:
            shutil.rmtree(self.require(repo_type, repo_id))

    def refs(self, repo_type: str, repo_id: str, kind: str) -> dict[str, str]:
        """``{name: commit_sha}`` of ``kind`` ("heads" or "tags")."""
        repo = self.require(repo_type, repo_id)
        out = self._git(repo, "for-each-ref", "--format=%(refname:lstrip=2) %(objectname)", f"refs/{kind}")
        return dict(line.split(" ", 1) for line in out.splitlines() if line)

    def create_ref(self, repo_type: str, repo_id: str, kind: str, name: str, revision: str) -> str:
        if not _VALID_REF.match(name):
            raise HubError(
                400, f"Invalid {kind[:-1] if kind == 'tags' else 'branch'} name: {name!r}", "BadRequest"
            )
        with self._lock:
            repo = self.require(repo_type, repo_id)
            if name in self.refs(repo_type, repo_id, kind):
                raise HubError(409, f"Reference already exists: refs/{kind}/{name}", "RefExists")
            other = "tags" if kind == "heads" else "heads"
            if name in self.refs(repo_type, repo_id, other):
                raise HubError(
                    409, f"A {other[:-1] if other == 'tags' else 'branch'} named {name!r} exists", "RefExists"
                )
            sha = self.require_revision(repo_type, repo_id, revision)
            self._git(repo, "update-ref", f"refs/{kind}/{name}", sha, _ZERO_SHA)
            return sha

    def delete_ref(self, repo_type: str, repo_id: str, kind: str, name: str) -> None:
        with self._lock:
            repo = self.require(repo_type, repo_id)
            if kind == "heads" and name == "main":
                raise HubError(403, "The main branch cannot be deleted", "Forbidden")
            if name not in self.refs(repo_type, repo_id, kind):
                raise HubError(404, f"Invalid rev id: {name}", "RevisionNotFound")
            self._git(repo, "update-ref", "-d", f"refs/{kind}/{name}")

    # -- commits -------------------------------------------------------------------------------

    def commit(
        self,
        repo_type: str,
        repo_id: str,
        branch: str,
        operations: list[tuple],
        *,
        summary: str,
        description: str = "",
        parent_commit: str | None = None,
        allow_unborn: bool = False,
    ) -> str:
        """Apply ``operations`` on top of ``branch`` and return the new commit sha.

        Operations: ``("add", path, bytes, is_lfs_pointer)``, ``("delete", path)``,
        ``("delete_folder", path)``.
        """
        with self._lock:
            repo = self.require(repo_type, repo_id)
            head = self.refs(repo_type, repo_id, "heads").get(branch)
            if head is None and not allow_unborn:
                raise HubError(404, f"Invalid rev id: {branch}", "RevisionNotFound")
            if parent_commit is not None and parent_commit != head:
                raise HubError(
                    412,
                    f"A commit has happened since {parent_commit}: {branch} is at {head}",
                    "PreconditionFailed",
                )
            with tempfile.TemporaryDirectory() as tmp:
                env = {"GIT_INDEX_FILE": os.path.join(tmp, "index")}
                if head is not None:
                    self._git(repo, "read-tree", head, env=env)
                else:
                    self._git(repo, "read-tree", "--empty", env=env)
                existing = set(self._git(repo, "ls-files", "-z", env=env).split("\0")) - {""}
                index_lines: list[str] = []
                for op in operations:
                    kind, path = op[0], op[1].strip("/")
                    if kind == "add":
                        blob = self._git(repo, "hash-object", "-w", "--stdin", input=op[2]).strip()
                        index_lines.append(f"100644 {blob}\t{path}")
                        existing.add(path)
                    elif kind == "delete":
                        if path not in existing:
                            raise HubError(
                                404, f"A file with this name doesn't exist: {path}", "EntryNotFound"
                            )
                        index_lines.append(f"0 {_ZERO_SHA}\t{path}")
                        existing.discard(path)
                    elif kind == "delete_folder":
                        inside = [p for p in existing if p.startswith(path + "/")]
                        if not inside:
                            raise HubError(
                                404, f"A folder with this name doesn't exist: {path}", "EntryNotFound"
                            )
                        for p in inside:
                            index_lines.append(f"0 {_ZERO_SHA}\t{p}")
                            existing.discard(p)
                    else:  # pragma: no cover - callers only build the three kinds above
                        raise ValueError(f"unknown operation {kind!r}")
                if index_lines:
                    self._git(
                        repo,
                        "update-index",
                        "--index-info",
                        input=("\n".join(index_lines) + "\n").encode(),
                        env=env,
                    )
                tree = self._git(repo, "write-tree", env=env).strip()
            message = summary + (f"\n\n{description}" if description else "")
            parents = ["-p", head] if head else []
            sha = self._git(repo, "commit-tree", tree, *parents, "-m", message).strip()
            self._git(repo, "update-ref", f"refs/heads/{branch}", sha, head or _ZERO_SHA)
            return sha


# --------------------------------------------------------------------------------------------------
# HTTP application
# --------------------------------------------------------------------------------------------------


@dataclass
class _FailureRule:
    remaining: int
    status: int
    method: str | None
    pattern: re.Pattern | None


@dataclass
class RequestRecord:
    """One request seen by the server (no headers, so no token, is ever recorded)."""

    method: str
    path: str
    status: int


@dataclass
class _ServerState:
    store: GitRepoStore
    require_token: bool
    failures: list[_FailureRule] = field(default_factory=list)
    requests: list[RequestRecord] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _repo_dir_type(repo_type: str) -> str:
    if repo_type in _REPO_TYPES.values():
        return repo_type
    raise HubError(404, f"Unknown repo type {repo_type!r}", "RepoNotFound")


def build_app(state: _ServerState, olah_cache: str):  # noqa: C901 - a flat list of routes reads best
    """The FastAPI app: the write layer and read fixes first, then olah's routes."""
    from olah.configs import OlahConfig
    from olah.server import AppSettings
    from olah.server_api_routes import meta_proxy_common, refs_proxy_common, tree_proxy_common
    from olah.server_file_routes import file_get_common, file_head_common
    from olah.server_routes import router as olah_router

    app = FastAPI(debug=False)
    config = OlahConfig()
    config.offline = True  # never contact huggingface.co
    config.mirrors_path = [str(state.store.root)]
    config.repos_path = olah_cache
    app.state.app_settings = AppSettings(config=config)
    app.state.logger = logger
    store = state.store

    @app.exception_handler(HubError)
    async def _hub_error(_request, exc: HubError):
        headers = {"X-Error-Message": exc.message}
        if exc.code:
            headers["X-Error-Code"] = exc.code
        return JSONResponse({"error": exc.message}, status_code=exc.status, headers=headers)

    @app.middleware("http")
    async def _faults_and_log(request: Request, call_next):
        path = request.url.path
        injected = None
        with state.lock:
            for rule in state.failures:
                if rule.remaining > 0 and (rule.method in (None, request.method)):
                    if rule.pattern is None or rule.pattern.search(path):
                        rule.remaining -= 1
                        injected = rule.status
                        break
        if injected is not None:
            response = JSONResponse({"error": "injected failure"}, status_code=injected)
        else:
            response = await call_next(request)
        with state.lock:
            state.requests.append(RequestRecord(request.method, path, response.status_code))
        return response

    def base_url(request: Request) -> str:
        return str(request.base_url).rstrip("/")

    def require_write(request: Request) -> None:
        auth = request.headers.get("authorization", "")
        if state.require_token and not (auth.startswith("Bearer ") and auth[7:].strip()):
            raise HubError(401, "Invalid credentials in Authorization header", "Unauthorized")

    def url_prefix(repo_type: str) -> str:
        return "" if repo_type == "models" else f"{repo_type}/"

    # -- account and validation --------------------------------------------------------------------

    @app.get("/api/whoami-v2")
    async def whoami(request: Request):
        require_write(request)
        return {
            "type": "user",
            "name": TEST_USER,
            "fullname": "treecot loopback tester",
            "orgs": [],
            "auth": {"type": "access_token", "accessToken": {"displayName": "loopback", "role": "write"}},
        }

    @app.post("/api/validate-yaml")
    async def validate_yaml(request: Request):
        import yaml

        content = (await request.json()).get("content", "")
        match = re.match(r"^---\s*\n(.*?)\n---\s*(\n|$)", content, flags=re.S)
        if match:
            try:
                data = yaml.safe_load(match.group(1))
            except yaml.YAMLError as err:
                return JSONResponse({"errors": [{"message": f"Invalid YAML: {err}"}]}, status_code=400)
            if data is not None and not isinstance(data, dict):
                return JSONResponse({"errors": [{"message": "Metadata must be a mapping"}]}, status_code=400)
        return {"errors": [], "warnings": []}

    # -- repositories --------------------------------------------------------------------------

    def _repo_from_payload(payload: dict) -> tuple[str, str]:
        repo_type = _REPO_TYPES.get(payload.get("type") or "model")
        if repo_type is None:
            raise HubError(400, f"Invalid repo type {payload.get('type')!r}", "BadRequest")
        name, org = payload.get("name") or "", payload.get("organization") or TEST_USER
        for part in (org, name):
            if not _VALID_NAME.match(part):
                raise HubError(400, f"Invalid repo name part {part!r}", "BadRequest")
        return repo_type, f"{org}/{name}"

    @app.post("/api/repos/create")
    async def create_repo(request: Request):
        require_write(request)
        repo_type, repo_id = _repo_from_payload(await request.json())
        url = f"{base_url(request)}/{url_prefix(repo_type)}{repo_id}"
        try:
            store.create(repo_type, repo_id)
        except HubError as err:
            if err.status == 409:
                return JSONResponse({"error": err.message, "url": url}, status_code=409)
            raise
        return {"url": url, "name": repo_id, "id": repo_id}

    @app.delete("/api/repos/delete")
    async def delete_repo(request: Request):
        require_write(request)
        repo_type, repo_id = _repo_from_payload(await request.json())
        store.delete(repo_type, repo_id)
        return {}

    # -- upload: preupload, LFS, commit -------------------------------------------------------------

    @app.post("/api/{repo_type}/{org}/{name}/preupload/{revision}")
    async def preupload(repo_type: str, org: str, name: str, revision: str, request: Request):
        require_write(request)
        repo_type, repo_id = _repo_dir_type(repo_type), f"{org}/{name}"
        payload = await request.json()
        remote = store.list_files(repo_type, repo_id, revision)
        attributes = ""
        if ".gitattributes" in remote:
            attributes = store._git(
                store.path(repo_type, repo_id), "cat-file", "blob", remote[".gitattributes"][0]
            )
        lfs_patterns = [line.split()[0] for line in attributes.splitlines() if "filter=lfs" in line]
        files = []
        for item in payload.get("files", []):
            path = item["path"]
            sample = base64.b64decode(item.get("sample", ""))
            lfs = (
                item.get("size", 0) > _LFS_SIZE_THRESHOLD
                or b"\0" in sample
                or any(
                    fnmatch.fnmatch(path, p) or fnmatch.fnmatch(os.path.basename(path), p)
                    for p in lfs_patterns
                )
            )
            entry = {"path": path, "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False}
            if path in remote:
                entry["oid"] = remote[path][1]
            files.append(entry)
        return {"files": files, "commitOid": store.require_revision(repo_type, repo_id, revision)}

    async def _lfs_batch(repo_type: str, repo_id: str, request: Request):
        require_write(request)
        store.require(repo_type, repo_id)
        payload = await request.json()
        if payload.get("operation") != "upload":
            raise HubError(400, "Only the upload operation is supported", "BadRequest")
        objects = []
        for obj in payload.get("objects", []):
            oid, size = obj["oid"], int(obj["size"])
            answer = {"oid": oid, "size": size, "authenticated": True}
            if not store.lfs_path(repo_type, repo_id, oid).is_file():
                href = f"{base_url(request)}/_lfs/{repo_type}/{repo_id}/{oid}"
                answer["actions"] = {"upload": {"href": href}, "verify": {"href": f"{href}/verify"}}
            objects.append(answer)
        return JSONResponse(
            {"transfer": "basic", "objects": objects}, media_type="application/vnd.git-lfs+json"
        )

    @app.post("/{repo_type}/{org}/{name_git}/info/lfs/objects/batch")
    async def lfs_batch(repo_type: str, org: str, name_git: str, request: Request):
        return await _lfs_batch(_repo_dir_type(repo_type), f"{org}/{name_git.removesuffix('.git')}", request)

    @app.post("/{org}/{name_git}/info/lfs/objects/batch")
    async def lfs_batch_model(org: str, name_git: str, request: Request):
        return await _lfs_batch("models", f"{org}/{name_git.removesuffix('.git')}", request)

    @app.put("/_lfs/{repo_type}/{org}/{name}/{oid}")
    async def lfs_upload(repo_type: str, org: str, name: str, oid: str, request: Request):
        repo_type = _repo_dir_type(repo_type)
        store.require(repo_type, f"{org}/{name}")
        target = store.lfs_path(repo_type, f"{org}/{name}", oid)
        digest = hashlib.sha256()
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(f".part{threading.get_ident()}")
        with open(tmp, "wb") as out:
            async for chunk in request.stream():
                digest.update(chunk)
                out.write(chunk)
        if digest.hexdigest() != oid:
            tmp.unlink()
            raise HubError(400, f"sha256 mismatch for LFS object {oid}", "BadRequest")
        os.replace(tmp, target)
        return Response(status_code=200)

    @app.post("/_lfs/{repo_type}/{org}/{name}/{oid}/verify")
    async def lfs_verify(repo_type: str, org: str, name: str, oid: str, request: Request):
        target = store.lfs_path(_repo_dir_type(repo_type), f"{org}/{name}", oid)
        size = (await request.json()).get("size")
        if not target.is_file() or (size is not None and target.stat().st_size != int(size)):
            raise HubError(404, f"LFS object {oid} not found", "EntryNotFound")
        return {"success": True}

    @app.post("/api/{repo_type}/{org}/{name}/commit/{revision}")
    async def commit(repo_type: str, org: str, name: str, revision: str, request: Request):
        require_write(request)
        repo_type, repo_id = _repo_dir_type(repo_type), f"{org}/{name}"
        if request.query_params.get("create_pr"):
            raise HubError(400, "Pull requests are not supported by the loopback hub", "BadRequest")
        store.require(repo_type, repo_id)
        header: dict = {}
        operations: list[tuple] = []
        for line in (await request.body()).splitlines():
            if not line.strip():
                continue
            item = json.loads(line)
            key, value = item["key"], item["value"]
            if key == "header":
                header = value
            elif key == "file":
                if value.get("encoding", "base64") != "base64":
                    raise HubError(400, f"Unsupported encoding {value.get('encoding')!r}", "BadRequest")
                operations.append(("add", value["path"], base64.b64decode(value["content"]), False))
            elif key == "lfsFile":
                oid = value["oid"]
                stored = store.lfs_path(repo_type, repo_id, oid)
                if not stored.is_file():
                    raise HubError(
                        422, f"LFS object {oid} for {value['path']} was never uploaded", "BadRequest"
                    )
                pointer = _LFS_POINTER.format(oid=oid, size=stored.stat().st_size).encode()
                operations.append(("add", value["path"], pointer, True))
            elif key == "deletedFile":
                operations.append(("delete", value["path"]))
            elif key == "deletedFolder":
                operations.append(("delete_folder", value["path"]))
            else:
                raise HubError(400, f"Unsupported commit operation {key!r}", "BadRequest")
        sha = store.commit(
            repo_type,
            repo_id,
            revision,
            operations,
            summary=header.get("summary") or "Upload files",
            description=header.get("description") or "",
            parent_commit=header.get("parentCommit"),
        )
        return {
            "success": True,
            "commitOid": sha,
            "commitUrl": f"{base_url(request)}/{url_prefix(repo_type)}{repo_id}/commit/{sha}",
            "pullRequestUrl": None,
        }

    # -- branches and tags -----------------------------------------------------------------------

    @app.post("/api/{repo_type}/{org}/{name}/branch/{branch}")
    async def create_branch(repo_type: str, org: str, name: str, branch: str, request: Request):
        require_write(request)
        body = await request.body()
        payload = json.loads(body) if body else {}
        start = payload.get("startingPoint") or "main"
        store.create_ref(_repo_dir_type(repo_type), f"{org}/{name}", "heads", branch, start)
        return {}

    @app.delete("/api/{repo_type}/{org}/{name}/branch/{branch}")
    async def delete_branch(repo_type: str, org: str, name: str, branch: str, request: Request):
        require_write(request)
        store.delete_ref(_repo_dir_type(repo_type), f"{org}/{name}", "heads", branch)
        return {}

    @app.post("/api/{repo_type}/{org}/{name}/tag/{revision}")
    async def create_tag(repo_type: str, org: str, name: str, revision: str, request: Request):
        require_write(request)
        tag = (await request.json()).get("tag")
        if not tag:
            raise HubError(400, "Missing 'tag' in the request body", "BadRequest")
        store.create_ref(_repo_dir_type(repo_type), f"{org}/{name}", "tags", tag, revision)
        return {}

    @app.delete("/api/{repo_type}/{org}/{name}/tag/{tag}")
    async def delete_tag(repo_type: str, org: str, name: str, tag: str, request: Request):
        require_write(request)
        store.delete_ref(_repo_dir_type(repo_type), f"{org}/{name}", "tags", tag)
        return {}

    # -- read fixes in front of olah ------------------------------------------------------------------

    @app.get("/api/{repo_type}/{org}/{name}")
    @app.head("/api/{repo_type}/{org}/{name}")
    async def repo_info_main(repo_type: str, org: str, name: str, request: Request):
        # olah resolves "latest commit" from its upstream cache; for a git mirror it is main.
        repo_type = _repo_dir_type(repo_type)
        store.require_revision(repo_type, f"{org}/{name}", "main")
        return await meta_proxy_common(app, repo_type, org, name, "main", request.method.lower(), None)

    @app.get("/api/{repo_type}/{org}/{name}/revision/{revision}")
    @app.head("/api/{repo_type}/{org}/{name}/revision/{revision}")
    async def repo_info(repo_type: str, org: str, name: str, revision: str, request: Request):
        repo_type = _repo_dir_type(repo_type)
        store.require_revision(repo_type, f"{org}/{name}", revision)
        return await meta_proxy_common(app, repo_type, org, name, revision, request.method.lower(), None)

    @app.get("/api/{repo_type}/{org}/{name}/refs")
    async def refs(repo_type: str, org: str, name: str, request: Request):
        # olah answers refs of an unknown repository with EntryNotFound; the Hub says RepoNotFound.
        repo_type = _repo_dir_type(repo_type)
        store.require(repo_type, f"{org}/{name}")
        include_prs = request.query_params.get("include_prs", "false").lower() in ("1", "true")
        return await refs_proxy_common(app, repo_type, org, name, include_prs, None)

    @app.get("/api/{repo_type}/{org}/{name}/commits/{revision}")
    async def commits(repo_type: str, org: str, name: str, revision: str):
        # olah's authors entries lack the "user" key that `list_repo_commits` reads.
        repo_type = _repo_dir_type(repo_type)
        sha = store.require_revision(repo_type, f"{org}/{name}", revision)
        out = store._git(store.path(repo_type, f"{org}/{name}"), "log", "--format=%H%x00%ct%x00%B%x1e", sha)
        items = []
        for record in filter(str.strip, out.split("\x1e")):
            commit_sha, epoch, message = record.strip("\n").split("\0", 2)
            date = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(int(epoch)))
            title, _, body = message.strip().partition("\n")
            items.append(
                {
                    "id": commit_sha,
                    "title": title,
                    "message": body.strip(),
                    "authors": [{"user": TEST_USER, "avatar": None}],
                    "date": date,
                }
            )
        return items

    @app.get("/api/{repo_type}/{org}/{name}/tree/{revision}")
    async def tree_root(repo_type: str, org: str, name: str, revision: str, request: Request):
        repo_type = _repo_dir_type(repo_type)
        store.require_revision(repo_type, f"{org}/{name}", revision)
        recursive = request.query_params.get("recursive", "false").lower() in ("1", "true")
        expand = request.query_params.get("expand", "false").lower() in ("1", "true")
        return await tree_proxy_common(
            app, repo_type, org, name, revision, "", recursive, expand, "get", None
        )

    @app.get("/api/{repo_type}/{org}/{name}/tree/{revision}/{path:path}")
    async def tree_path(repo_type: str, org: str, name: str, revision: str, path: str, request: Request):
        # olah answers a missing folder with a generic 404; the client expects EntryNotFound.
        repo_type = _repo_dir_type(repo_type)
        sha = store.require_revision(repo_type, f"{org}/{name}", revision)
        listing = store._git(
            store.path(repo_type, f"{org}/{name}"), "ls-tree", sha, "--", path.strip("/"), check=False
        )
        if " tree " not in listing:
            raise HubError(404, f"{path} is not a folder on {revision!r}", "EntryNotFound")
        recursive = request.query_params.get("recursive", "false").lower() in ("1", "true")
        expand = request.query_params.get("expand", "false").lower() in ("1", "true")
        return await tree_proxy_common(
            app, repo_type, org, name, revision, path, recursive, expand, "get", None
        )

    def _check_entry(repo_type: str, repo_id: str, revision: str, path: str) -> None:
        sha = store.require_revision(repo_type, repo_id, revision)
        repo = store.path(repo_type, repo_id)
        if not store._git(repo, "ls-tree", sha, "--", path, check=False).strip():
            raise HubError(404, f"{path} does not exist on {revision!r}", "EntryNotFound")

    async def _resolve(repo_type: str, org: str, name: str, revision: str, path: str, request: Request):
        repo_type = _repo_dir_type(repo_type)
        _check_entry(repo_type, f"{org}/{name}", revision, path)
        if request.method == "HEAD":
            return await file_head_common(app, repo_type, org, name, revision, path, request)
        return await file_get_common(app, repo_type, org, name, revision, path, request)

    for method in ("GET", "HEAD"):
        app.add_api_route(
            "/{repo_type}/{org}/{name}/resolve/{revision}/{path:path}", _resolve, methods=[method]
        )

    async def _resolve_model(org: str, name: str, revision: str, path: str, request: Request):
        return await _resolve("models", org, name, revision, path, request)

    for method in ("GET", "HEAD"):
        app.add_api_route("/{org}/{name}/resolve/{revision}/{path:path}", _resolve_model, methods=[method])

    app.include_router(olah_router)
    return app


# --------------------------------------------------------------------------------------------------
# Server lifecycle
# --------------------------------------------------------------------------------------------------


class HubServer:
    """A Hub-compatible HTTP server on 127.0.0.1, storing repositories as git repos under ``root``.

    >>> server = HubServer(tmp_dir)
    >>> url = server.start()          # "http://127.0.0.1:<free port>"
    >>> env = server.client_env(tmp_dir / "hf_home")   # for a subprocess client
    >>> server.stop()

    Args:
        root: where repositories live (created if missing).
        port: 0 picks a free port.
        require_token: answer 401 to writes without a bearer token, like the Hub.
    """

    def __init__(self, root: str | os.PathLike, *, port: int = 0, require_token: bool = True):
        self.root = Path(root)
        self.store = GitRepoStore(self.root / "repos")
        self._state = _ServerState(store=self.store, require_token=require_token)
        self._port = port
        self._server = None
        self._thread: threading.Thread | None = None
        self.url: str | None = None

    def start(self, timeout: float = 30.0) -> str:
        """Start serving in a background thread and return the base URL."""
        import uvicorn

        if self._server is not None:
            return self.url  # type: ignore[return-value]
        olah_cache = self.root / "olah-cache"
        olah_cache.mkdir(parents=True, exist_ok=True)
        app = build_app(self._state, str(olah_cache))
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self._port))
        port = sock.getsockname()[1]
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name="treecot-hub-server", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the loopback hub server did not start within {timeout:.0f}s")
            time.sleep(0.02)
        self._sock = sock
        self.url = f"http://127.0.0.1:{port}"
        logger.info("loopback hub serving %s at %s", self.store.root, self.url)
        return self.url

    def stop(self) -> None:
        """Stop the server and wait for its thread."""
        if self._server is None:
            return
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._sock.close()
        self._server = self._thread = None
        self.url = None

    def __enter__(self) -> HubServer:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- test helpers --------------------------------------------------------------------------------

    def client_env(
        self, hf_home: str | os.PathLike, token: str | None = DEFAULT_TEST_TOKEN, base: dict | None = None
    ) -> dict[str, str]:
        """Environment for a client process talking to this server.

        ``HF_ENDPOINT`` must be set before ``huggingface_hub`` is imported, hence a fresh process.
        The Hub cache (``HF_HOME``) is isolated per call so downloads never leak between tests.
        """
        if self.url is None:
            raise RuntimeError("HubServer.client_env() needs a started server: call start() first")
        hf_home = Path(hf_home)
        env = {k: v for k, v in (base if base is not None else os.environ).items() if not k.startswith("HF_")}
        env.update(
            HF_ENDPOINT=self.url,
            HF_HUB_DISABLE_XET="1",
            HF_HOME=str(hf_home),
            HF_HUB_DISABLE_TELEMETRY="1",
            HF_HUB_DISABLE_PROGRESS_BARS="1",
            HF_DATASETS_DISABLE_PROGRESS_BARS="1",
            HF_DATASETS_CACHE=str(hf_home / "datasets"),
            HF_HUB_ETAG_TIMEOUT="30",
            HF_HUB_DOWNLOAD_TIMEOUT="30",
        )
        if token:
            env["HF_TOKEN"] = token
        return env

    def fail_next(
        self, times: int = 1, *, status: int = 503, method: str | None = None, path_pattern: str | None = None
    ) -> None:
        """Answer the next ``times`` matching requests with ``status`` (to test retries)."""
        rule = _FailureRule(times, status, method, re.compile(path_pattern) if path_pattern else None)
        with self._state.lock:
            self._state.failures.append(rule)

    def clear_failures(self) -> None:
        with self._state.lock:
            self._state.failures.clear()

    @property
    def requests(self) -> list[RequestRecord]:
        """Every request served so far (method, path, status)."""
        with self._state.lock:
            return list(self._state.requests)

    def repo_dir(self, repo_id: str, repo_type: str = "dataset") -> Path:
        """The git repository backing ``repo_id``."""
        return self.store.path(_REPO_TYPES[repo_type], repo_id)


def run_client(
    code: str, env: dict[str, str], *, timeout: float = 180.0, cwd: str | os.PathLike | None = None
) -> subprocess.CompletedProcess:
    """Run Python ``code`` in a fresh interpreter with ``env`` (see :meth:`HubServer.client_env`).

    Raises ``AssertionError`` with the client's output when it exits non-zero.
    """
    repo_root = Path(__file__).resolve().parents[1]
    env = {**env, "PYTHONPATH": os.pathsep.join(filter(None, [str(repo_root), env.get("PYTHONPATH", "")]))}
    proc = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd or repo_root,
    )
    if proc.returncode != 0:
        raise AssertionError(
            f"hub client failed (exit {proc.returncode})\n--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr}"
        )
    return proc


try:
    import pytest

    @pytest.fixture(scope="session")
    def hub_server(tmp_path_factory) -> Iterator[HubServer]:
        """A started :class:`HubServer` shared by the whole test session (import it into a test module)."""
        server = HubServer(tmp_path_factory.mktemp("loopback-hub"))
        server.start()
        try:
            yield server
        finally:
            server.stop()

except ImportError:  # pragma: no cover - the module also runs as a script without pytest
    pass


def main(argv: list[str] | None = None) -> None:
    """``python -m tests.hubserver``: serve a loopback Hub until interrupted."""
    parser = argparse.ArgumentParser(description="Hub-compatible loopback server (olah + write layer).")
    parser.add_argument("--root", default=os.path.join(tempfile.gettempdir(), "treecot-loopback-hub"))
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--no-auth", action="store_true", help="accept writes without a token")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    server = HubServer(args.root, port=args.port, require_token=not args.no_auth)
    url = server.start()
    print(f"loopback hub at {url}, repositories in {server.store.root}")
    print(f"export HF_ENDPOINT={url} HF_HUB_DISABLE_XET=1 HF_TOKEN={DEFAULT_TEST_TOKEN} HF_HOME=$(mktemp -d)")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


if __name__ == "__main__":
    main()
