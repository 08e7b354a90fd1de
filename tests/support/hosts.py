"""Real, freshly booted Debian 12 hosts for integration tests: systemd-nspawn containers on a bridge.

    template = ensure_template()             # cached rootfs: debootstrap + CA certs + ./bootstrap.sh
    net = TestNetwork("jht", "10.251.0").start()
    alpha = net.add_host("alpha", template)  # boots container "jht-alpha", hostname "alpha"
    beta = net.add_host("beta", template, shape="loopback")  # as the Debian installer leaves a host
    alpha.run("hostname"); alpha.state_apply("jupyterhub", pillar={...})
    net.close()                              # also runs at exit if forgotten

Pieces and where they live on the machine (all removed again by close()/stop(), or at the latest by
the next run with the same prefix, which cleans up what a killed run left behind):

- base rootfs     /var/cache/jhsalt-tests/debootstrap-bookworm      (debootstrap, never modified)
- template        /var/cache/jhsalt-tests/template-<key>            (read-only lower dir of overlays)
- per host        /var/tmp/jhsalt-tests/<prefix>/<name>/{upper,work,root,console.log}
- downloads       /var/cache/jhsalt-tests/uv-cache, every host's /root/.cache/uv (TestNetwork.uv_cache):
                  the hub env's wheels are downloaded once per machine, not once per host (uv still
                  checks every file against the lock's hashes and installs it); None: each host
                  downloads for itself, as a fresh host does (bench/run.py's apply.first)
- cgroups         /sys/fs/cgroup/{systemd,unified}/jhsalt/<prefix>/<name>
- network         bridge br-<prefix>, nft table ip jhsalt_<prefix> (NAT), net.ipv4.ip_forward
- bookkeeping     /run/jhsalt-tests/ (prefix locks, who needs ip_forward and its original value)

Host shapes (how a host's own name resolves; real installs come in the last three):

- "bridge"    (default) every host name on its bridge address, no domain: the harness's old shape
- "loopback"  the Debian installer with DHCP and cloud images (cloud-init manage_etc_hosts): the
              host's own name only on 127.0.1.1 (`127.0.1.1 <fqdn> <name>`)
- "static"    a static install: `<bridge address> <fqdn> <name>`
- "two-nics"  a cluster network (the bridge, `host.ip`) and a public one (`pub0`, `host.public_ip`,
              a veth with no peer network); the host's own name is on the PUBLIC address

Other hosts always see a host's name on its bridge address (as DNS on the cluster network would
answer), with its FQDN unless it is a "bridge" host. FQDNs are <name>.<DOMAIN>.

Facts behind these choices: /work/shared/notes/test-hosts.md. No systemd runs on the machine, hence
--register=no --keep-unit, our own cgroup folders, and nsenter instead of machinectl.
"""
from __future__ import annotations

import atexit
import contextlib
import dataclasses
import fcntl
import hashlib
import ipaddress
import json
import os
import re
import shutil
import signal
import subprocess
import tarfile
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("JHSALT_TEST_CACHE", "/var/cache/jhsalt-tests"))
WORK = Path("/var/tmp/jhsalt-tests")
STATE = Path("/run/jhsalt-tests")
CGROUP = Path("/sys/fs/cgroup")
MIRROR = "http://deb.debian.org/debian"
BASE_PACKAGES = "systemd,systemd-sysv,dbus,iproute2,python3,python3-venv,sudo,ca-certificates"
FORMULA = "/srv/formula"
CLEAN_ENV = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root",
             "LANG=C.UTF-8"]
NSPAWN_NOISE = "Attempted to remove disk file system"  # harmless message of nspawn on exit
NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
SHAPES = ("bridge", "loopback", "static", "two-nics")
DOMAIN = "jhsalt.test"  # RFC 2606: never a real domain
PUBLIC_NET = "198.51.100"  # TEST-NET-2 (RFC 5737) on the two-nics hosts' pub0: never routed anywhere


# --------------------------------------------------------------------------------------- helpers

def wait_for(predicate, timeout=60, interval=0.5, what="condition"):
    """Poll `predicate` until it returns something truthy (returned); AssertionError after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def _tail(text, limit=6000):
    text = text or ""
    return text if len(text) <= limit else "[...]\n" + text[-limit:]


def _failure(cmd, proc):
    return AssertionError(
        f"command failed (rc={proc.returncode}): {cmd!r}\n"
        f"--- stdout ---\n{_tail(proc.stdout)}\n--- stderr ---\n{_tail(proc.stderr)}")


def _run(argv, *, input=None, timeout=None, text=True):
    """subprocess.run in its own process group, so a timeout or Ctrl-C kills everything it started
    (nsenter forks: killing only nsenter would leave the command running inside the container)."""
    proc = subprocess.Popen(
        [str(a) for a in argv], stdin=subprocess.DEVNULL if input is None else subprocess.PIPE,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
        **({"text": True, "errors": "replace"} if text else {}))
    try:
        out, err = proc.communicate(input, timeout=timeout)
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


def _sh(*argv, check=True, **kw):
    """Run a command on the machine (not in a container)."""
    proc = _run(argv, **kw)
    if check and proc.returncode:
        raise _failure(list(argv), proc)
    return proc


@contextlib.contextmanager
def _file_lock(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


def _mounts_under(path):
    """Mount points at or below path, deepest first."""
    path = str(path)
    points = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), line.split()[4])
            if point == path or point.startswith(path + "/"):
                points.append(point)
    return sorted(points, key=len, reverse=True)


def _unmount_all(path):
    for point in _mounts_under(path):
        if _sh("umount", point, check=False).returncode:
            _sh("umount", "-l", point, check=False)


def _rmtree(path):
    """Remove path unless something is still mounted below it (never delete through a mount)."""
    if Path(path).exists() and not _mounts_under(path):
        shutil.rmtree(path, ignore_errors=True)


# Own cgroup folder per container: with no systemd on the machine all containers would otherwise share
# one cgroup and concurrent boots fail ("Couldn't move remaining userspace processes").

def _cgroup_dirs(*parts):
    roots = [p for p in (CGROUP / "systemd", CGROUP / "unified", CGROUP) if (p / "cgroup.procs").exists()]
    return [root.joinpath("jhsalt", *parts) for root in roots]


def _enter_cgroups(dirs):
    def enter():  # runs in the child between fork and exec
        for d in dirs:
            (d / "cgroup.procs").write_text(str(os.getpid()))
    return enter


def _cgroup_pids(top):
    pids = set()
    for folder, _, _ in os.walk(top):
        with contextlib.suppress(OSError):
            pids.update(int(p) for p in Path(folder, "cgroup.procs").read_text().split())
    return pids


def _remove_cgroups(dirs):
    """Kill whatever is left in the cgroup trees (normally nothing) and remove the folders."""
    for top in dirs:
        for _ in range(100):
            pids = _cgroup_pids(top)
            if not pids:
                break
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.1)
        for folder, _, _ in os.walk(top, topdown=False):
            with contextlib.suppress(OSError):
                os.rmdir(folder)
        parent = top.parent
        while parent.name and parent.parent != parent and "jhsalt" in parent.parts:
            with contextlib.suppress(OSError):
                parent.rmdir()  # only succeeds when empty, so other runs' folders survive
            parent = parent.parent


# --------------------------------------------------------------------------- formula and template

def repo_files(repo=REPO):
    """The working tree as git sees it: tracked + untracked-not-ignored files, without .git/.salt-run."""
    out = subprocess.run(["git", "-C", str(repo), "ls-files", "-z", "--cached", "--others",
                          "--exclude-standard"], check=True, capture_output=True).stdout.decode()
    names = sorted({n for n in out.split("\0") if n and n.split("/")[0] not in (".git", ".salt-run")})
    return [n for n in names if os.path.lexists(repo / n)]  # tracked but deleted in the working tree


def _send_formula(extract_argv, repo=REPO):
    """Stream the working tree as a tar archive into extract_argv (a `tar -x` somewhere)."""
    def as_root(info):
        info.uid = info.gid = 0
        info.uname = info.gname = "root"
        return info
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen([str(a) for a in extract_argv], stdin=subprocess.PIPE, stderr=err,
                                stdout=err, start_new_session=True)
        try:
            with tarfile.open(fileobj=proc.stdin, mode="w|") as tar:
                for name in repo_files(repo):
                    tar.add(repo / name, arcname=name, recursive=False, filter=as_root)
            proc.stdin.close()
        except BrokenPipeError:
            pass
        finally:
            rc = proc.wait()
        if rc:
            err.seek(0)
            raise AssertionError(f"copying the formula failed (rc={rc}): {extract_argv}\n"
                                 + err.read().decode(errors="replace"))


# dpkg on test hosts skips fsync (force-unsafe-io): measured here 0.41 ms per unpacked file with
# fsync, 0.05 ms without, over thousands of files per first apply. A crash loses a test host, never
# data. bench/run.py removes it (UNSAFE_IO) so that its apply.first is a real host's.
UNSAFE_IO = "/etc/dpkg/dpkg.cfg.d/jhsalt-tests-unsafe-io"
TEMPLATE_EXTRAS = {UNSAFE_IO: "force-unsafe-io\n"}


def template_key(repo=REPO):
    digest = hashlib.sha256(json.dumps(TEMPLATE_EXTRAS, sort_keys=True).encode())
    for name in ("bootstrap.sh", "requirements/pip.lock", "requirements/build.lock", "requirements/salt.lock"):
        digest.update((repo / name).read_bytes())
    return digest.hexdigest()[:16]


def _nspawn_run(root, *cmd, timeout=3600):
    """Run a command in a rootfs without booting it, with the machine's network (for building)."""
    cgroups = _cgroup_dirs("build", str(os.getpid()))
    for d in cgroups:
        d.mkdir(parents=True, exist_ok=True)
    argv = ["systemd-nspawn", "-q", "--register=no", "--keep-unit", "--pipe",
            f"--machine=jhsalt-build-{os.getpid()}", "-D", str(root), *cmd]
    try:
        return subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              errors="replace", timeout=timeout, preexec_fn=_enter_cgroups(cgroups))
    finally:
        _remove_cgroups(cgroups)
        shutil.rmtree(f"/run/systemd/nspawn/propagate/jhsalt-build-{os.getpid()}", ignore_errors=True)


def ensure_base():
    """The debootstrapped Debian 12 rootfs, created once (~50 s) and never modified afterwards."""
    base = CACHE / "debootstrap-bookworm"
    if not base.is_dir():
        if not shutil.which("debootstrap"):
            raise RuntimeError(f"{base} is missing and debootstrap is not installed (./bootstrap.sh --tests)")
        tmp = CACHE / f".debootstrap-bookworm.tmp-{os.getpid()}"
        try:
            _sh("debootstrap", "--variant=minbase", f"--include={BASE_PACKAGES}", "bookworm", tmp, MIRROR,
                timeout=3600)
            tmp.rename(base)
        finally:
            _rmtree(tmp)
    return base


def ensure_template(repo=REPO):
    """Path of the ready host template for the current bootstrap.sh + requirements/salt.lock.

    Built at most once per key, under a file lock (concurrent pytest runs wait for each other), in a
    temporary folder that is renamed into place when complete, so a half-built template is never used.
    """
    template = CACHE / f"template-{template_key(repo)}"
    if template.is_dir():
        return template
    with _file_lock(CACHE / ".build.lock"):
        if template.is_dir():
            return template
        for stale in CACHE.glob(".*.tmp-*"):  # left by a killed build; builders hold the lock
            _rmtree(stale)
        base = ensure_base()
        tmp = CACHE / f".{template.name}.tmp-{os.getpid()}"
        log = CACHE / f"{template.name}.log"
        try:
            _sh("cp", "-a", "--reflink=auto", base, tmp, timeout=600)
            certs = tmp / "usr/local/share/ca-certificates"
            certs.mkdir(parents=True, exist_ok=True)
            for crt in Path("/usr/local/share/ca-certificates").glob("*.crt"):
                shutil.copy2(crt, certs / crt.name)
            for path, content in TEMPLATE_EXTRAS.items():
                (tmp / path.lstrip("/")).write_text(content)
            (tmp / FORMULA.lstrip("/")).mkdir(parents=True, exist_ok=True)
            _send_formula(["tar", "-x", "-C", tmp / FORMULA.lstrip("/")], repo)
            steps = [("build", ["sh", "-c", "set -e; update-ca-certificates; "
                                "systemctl enable systemd-networkd; " f"{FORMULA}/bootstrap.sh"]),
                     ("second bootstrap", [f"{FORMULA}/bootstrap.sh"])]
            with open(log, "w") as out:
                for title, cmd in steps:
                    proc = _nspawn_run(tmp, *cmd)
                    out.write(f"=== {title}: {cmd} -> rc={proc.returncode}\n{proc.stdout}{proc.stderr}\n")
                    if proc.returncode:
                        raise _failure(["systemd-nspawn", "-D", tmp, *cmd], proc)
            lines = [line for line in (proc.stdout + proc.stderr).strip().splitlines()
                     if not line.startswith(NSPAWN_NOISE)]
            if len(lines) != 1 or not lines[0].startswith("bootstrap: ok"):
                raise AssertionError("bootstrap.sh is not idempotent: its second run in the template did "
                                     "more than report ok:\n" + "\n".join(lines))
            tmp.rename(template)
        finally:
            _rmtree(tmp)
    return template


# ------------------------------------------------------------------------------------ salt results

def _parse_salt_json(stdout):
    lines = stdout.splitlines()
    for start in [0] + [i for i, line in enumerate(lines) if line.startswith("{")]:  # skip noise before JSON
        try:
            payload = json.loads("\n".join(lines[start:]))
        except ValueError:
            continue
        return payload.get("local") if isinstance(payload, dict) else None
    return None


@dataclasses.dataclass
class SaltResult:
    returncode: int
    stdout: str
    stderr: str
    duration: float  # seconds
    cmd: list = dataclasses.field(default_factory=list)
    data: object = dataclasses.field(init=False)

    def __post_init__(self):
        self.data = _parse_salt_json(self.stdout)

    def states(self) -> dict:
        """State returns keyed as by Salt (`file_|-id_|-name_|-managed`), in run order; {} if no state run."""
        if not isinstance(self.data, dict) or not all(
                isinstance(r, dict) and "result" in r for r in self.data.values()):
            return {}
        return dict(sorted(self.data.items(), key=lambda kv: kv[1].get("__run_num__", 0)))

    def _by_id(self, keep):
        out = {}
        for key, ret in self.states().items():
            if keep(ret):
                parts = key.split("_|-")
                sid = ret.get("__id__", parts[1] if len(parts) > 1 else key)
                out[sid if sid not in out else f"{sid}|{parts[0]}.{parts[-1]}"] = ret
        return out

    def changed(self) -> dict:
        """State ID -> changes, for states that changed something."""
        return {sid: ret["changes"] for sid, ret in self._by_id(lambda r: r.get("changes")).items()}

    def failed(self) -> dict:
        """State ID -> comment, for states with result False (render errors: key '(render)')."""
        if isinstance(self.data, list):  # e.g. ["Rendering SLS 'base:x' failed: ..."]
            return {"(render)": "\n".join(map(str, self.data))}
        failed = self._by_id(lambda r: r.get("result") is False)
        return {sid: ret.get("comment") for sid, ret in failed.items()}

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.failed()

    def __str__(self):
        text = f"{' '.join(map(str, self.cmd))}\n-> rc={self.returncode} in {self.duration:.1f}s"
        if self.failed():
            text += "\nfailed: " + json.dumps(self.failed(), indent=2, default=str)
        if self.data is None:
            text += f"\n--- stdout ---\n{_tail(self.stdout)}"
        if self.stderr.strip():
            text += f"\n--- stderr ---\n{_tail(self.stderr)}"
        return text


# ------------------------------------------------------------------------------------------- hosts

class Host:
    """One booted container. Create through TestNetwork.add_host (the make_host fixture)."""

    def __init__(self, network, name, ip, binds=(), shape="bridge"):
        if shape not in SHAPES:
            raise ValueError(f"shape {shape!r}: one of {', '.join(SHAPES)}")
        self.network, self.name, self.ip, self.shape = network, name, ip, shape
        self.fqdn = name if shape == "bridge" else f"{name}.{DOMAIN}"
        self.public_ip = f"{PUBLIC_NET}.{ip.rsplit('.', 1)[1]}" if shape == "two-nics" else None
        # host side of pub0 (<= 15 characters, unique per container)
        self.public_veth = "vx" + hashlib.sha256(f"{network.prefix}-{name}".encode()).hexdigest()[:10]
        self.binds = [(Path(src), dst) for src, dst in binds]
        self.machine = f"{network.prefix}-{name}"  # container name; the veth is vb-<machine> (hashed if long)
        self.dir = WORK / network.prefix / name
        self.root = self.dir / "root"
        self.log = self.dir / "console.log"
        self.cgroups = _cgroup_dirs(network.prefix, name)
        self.proc = None  # the systemd-nspawn process
        self.pid1 = None  # the container's systemd, as seen from the machine
        self.boot_seconds = None

    def __repr__(self):
        return f"<Host {self.name} {self.ip} {self.shape} ({self.machine}, pid1={self.pid1})>"

    def hosts_line(self, viewer):
        """This host's line in `viewer`'s /etc/hosts (None: no line), as its shape has it."""
        if viewer is not self:
            return f"{self.ip}\t{self.name}" if self.shape == "bridge" else f"{self.ip}\t{self.fqdn} {self.name}"
        address = {"bridge": self.ip, "loopback": "127.0.1.1", "static": self.ip,
                   "two-nics": self.public_ip}[self.shape]
        return f"{address}\t{self.name}" if self.shape == "bridge" else f"{address}\t{self.fqdn} {self.name}"

    # -- lifecycle

    def start(self, template):
        started = time.monotonic()
        _rmtree(self.dir)
        for sub in ("upper", "work", "root"):
            (self.dir / sub).mkdir(parents=True)
        _sh("mount", "-t", "overlay", "overlay", "-o",
            f"lowerdir={template},upperdir={self.dir / 'upper'},workdir={self.dir / 'work'}", self.root)
        self._write_identity()
        for d in self.cgroups:
            d.mkdir(parents=True, exist_ok=True)
        for src in [src for src, _ in self.binds] + ([self.network.uv_cache] if self.network.uv_cache else []):
            src.mkdir(parents=True, exist_ok=True)
        argv = ["systemd-nspawn", "-q", "--boot", "--register=no", "--keep-unit", f"--machine={self.machine}",
                f"--hostname={self.name}", "-D", self.root, f"--network-bridge={self.network.bridge}",
                "--resolv-conf=copy-host", "--link-journal=no",
                *([f"--network-veth-extra={self.public_veth}:pub0"] if self.shape == "two-nics" else []),
                *[f"--bind={src}:{dst}" for src, dst in self.binds],
                *([f"--bind={self.network.uv_cache}:/root/.cache/uv"] if self.network.uv_cache else [])]
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen([str(a) for a in argv], stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True,
                                         preexec_fn=_enter_cgroups(self.cgroups))
        if self.shape == "two-nics":  # carrier for pub0 (the machine side stays without an address)
            wait_for(lambda: Path(f"/sys/class/net/{self.public_veth}").exists(), 30, 0.02,
                     f"{self.public_veth} of {self.machine}")
            _sh("ip", "link", "set", self.public_veth, "up")
        self._wait_for_boot()
        self.boot_seconds = time.monotonic() - started
        self.copy_formula()
        return self

    def _write_identity(self):
        etc = self.root / "etc"
        (etc / "machine-id").write_text(uuid.uuid4().hex + "\n")
        dbus_id = self.root / "var/lib/dbus/machine-id"
        dbus_id.parent.mkdir(parents=True, exist_ok=True)
        dbus_id.unlink(missing_ok=True)
        dbus_id.symlink_to("/etc/machine-id")
        (etc / "hostname").write_text(self.name + "\n")
        (etc / "hosts").write_text(self.network.hosts_file(self))
        (etc / "systemd/network").mkdir(parents=True, exist_ok=True)
        (etc / "systemd/network/10-host0.network").write_text(
            f"[Match]\nName=host0\n\n[Network]\nAddress={self.ip}/24\nGateway={self.network.gateway}\n"
            "LinkLocalAddressing=no\nIPv6AcceptRA=no\n")
        if self.shape == "two-nics":
            (etc / "systemd/network/20-pub0.network").write_text(
                f"[Match]\nName=pub0\n\n[Network]\nAddress={self.public_ip}/24\n"
                "LinkLocalAddressing=no\nIPv6AcceptRA=no\nConfigureWithoutCarrier=yes\n")

    def _wait_for_boot(self, timeout=120):
        deadline = time.monotonic() + timeout
        while self.pid1 is None or not Path(f"/proc/{self.pid1}/root/run/systemd/private").exists():
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.machine}: systemd-nspawn exited with {self.proc.returncode}\n"
                                   + self.console_tail())
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.machine}: systemd did not come up in {timeout}s\n"
                                   + self.console_tail())
            with contextlib.suppress(OSError):
                for child in Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split():
                    if Path(f"/proc/{child}/comm").read_text().strip() == "systemd":
                        self.pid1 = int(child)
            time.sleep(0.02)
        state = self.run(["systemctl", "is-system-running", "--wait"], check=False,
                         timeout=max(1, deadline - time.monotonic())).stdout.strip()
        if state not in ("running", "degraded"):
            failed = self.run(["systemctl", "--failed", "--no-pager"], check=False).stdout
            raise RuntimeError(f"{self.machine}: system state {state!r}\n{failed}\n" + self.console_tail())
        self.run(["/lib/systemd/systemd-networkd-wait-online", "-i", "host0", "--timeout=30"])

    def console_tail(self, lines=40):
        with contextlib.suppress(OSError):
            return "--- console ---\n" + "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def terminate(self, clean=False):
        """End the container; stop() waits for it. A test host is thrown away, so by default at
        once: SIGKILL to its init, the kernel ends every process of its PID namespace and nspawn
        cleans up and exits (~0.1 s). clean=True: a clean halt (SIGTERM to nspawn), each service
        stopped in turn (~10 s with Grid Engine's qmaster)."""
        if self.proc and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                if self.pid1 and not clean:
                    os.kill(self.pid1, signal.SIGKILL)
                else:
                    self.proc.terminate()

    def stop(self, clean=False):
        """End the container (terminate()) and remove everything it used on the machine. Idempotent."""
        self.terminate(clean)
        if self.proc:
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                _remove_cgroups(self.cgroups)  # SIGKILLs everything in the container
                self.proc.wait(timeout=30)
        self.pid1 = None
        _remove_cgroups(self.cgroups)
        _unmount_all(self.dir)
        _rmtree(self.dir)
        shutil.rmtree(f"/run/systemd/nspawn/propagate/{self.machine}", ignore_errors=True)
        self.network.forget(self)

    # -- using the host

    def _argv(self, argv, env=None, user=None):
        if self.pid1 is None:
            raise RuntimeError(f"{self.machine} is not running")
        if user:
            argv = ["runuser", "-u", user, "--", *argv]
        extra = [f"{k}={v}" for k, v in (env or {}).items()]
        return ["nsenter", "-t", str(self.pid1), "-a", "env", "-i", *CLEAN_ENV, *extra, *argv]

    def run(self, cmd, *, check=True, input=None, env=None, user=None, timeout=600):
        """Run cmd (list: exec; str: /bin/sh -c) inside the container with a clean environment."""
        argv = ["/bin/sh", "-c", cmd] if isinstance(cmd, str) else [str(a) for a in cmd]
        proc = _run(self._argv(argv, env, user), input=input, timeout=timeout)
        proc = subprocess.CompletedProcess(cmd, proc.returncode, proc.stdout, proc.stderr)
        if check and proc.returncode:
            raise _failure(f"[{self.name}] {cmd!r}", proc)
        return proc

    def put_file(self, path, content, mode=0o644, owner="root"):
        data = content.encode() if isinstance(content, str) else content
        script = 'set -e; mkdir -p "$(dirname "$1")"; cat > "$1"; chown "$3" "$1"; chmod "$2" "$1"'
        proc = _run(self._argv(["sh", "-c", script, "put_file", str(path), f"{mode:o}", owner]), input=data,
                    timeout=120, text=False)
        if proc.returncode:
            raise AssertionError(f"[{self.name}] put_file {path} failed: "
                                 + proc.stderr.decode(errors="replace"))

    def read_file(self, path) -> str:
        return self.run(["cat", str(path)]).stdout

    def copy_formula(self):
        """Replace /srv/formula with the repository's current working tree (see repo_files)."""
        extract = f"rm -rf {FORMULA} && mkdir -p {FORMULA} && tar -x -C {FORMULA}"
        _send_formula(self._argv(["sh", "-c", extract]))

    def salt_call(self, *args, pillar=None, check=False, timeout=1800) -> SaltResult:
        cmd = [f"{FORMULA}/bin/salt-call", "--out=json", "--log-level=warning", *map(str, args)]
        if pillar is not None:
            cmd.append("pillar=" + json.dumps(pillar))
        started = time.monotonic()
        proc = self.run(cmd, check=False, timeout=timeout)
        result = SaltResult(proc.returncode, proc.stdout, proc.stderr, time.monotonic() - started, cmd)
        if check and not result.ok:
            raise AssertionError(f"[{self.name}] {result}")
        return result

    def state_apply(self, sls=None, *, pillar=None, test=False, timeout=1800) -> SaltResult:
        args = ["state.apply", *([sls] if sls else []), *(["test=True"] if test else [])]
        return self.salt_call(*args, pillar=pillar, timeout=timeout)


# ------------------------------------------------------------------------------------------ network

def _prefix_in_use(prefix):
    """True while a run holds this prefix's lock (flock is per open file, so also true for our own)."""
    with open(STATE / f"{prefix}.lock", "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        return False


def _ip_forward(prefix, wanted):
    """Reference-counted net.ipv4.ip_forward: the first run to need it saves the old value, the last
    one to leave restores it (runs with other prefixes may be forwarding at the same time)."""
    knob = Path("/proc/sys/net/ipv4/ip_forward")
    users, saved = STATE / "ip_forward.users", STATE / "ip_forward.saved"
    with _file_lock(STATE / "ip_forward.lock"):
        users.mkdir(parents=True, exist_ok=True)
        for user in users.iterdir():  # runs that were killed
            if user.name != prefix and not _prefix_in_use(user.name):
                user.unlink()
        (users / prefix).unlink(missing_ok=True)
        if wanted:
            if not saved.exists():
                saved.write_text(knob.read_text())
            (users / prefix).touch()
            knob.write_text("1\n")
        elif not any(users.iterdir()) and saved.exists():
            knob.write_text(saved.read_text())
            saved.unlink()


class TestNetwork:
    """Bridge br-<prefix> with <subnet>.1/24 on the machine, NAT to the default route, and its hosts."""
    __test__ = False  # not a pytest test class

    def __init__(self, prefix="jht", subnet="10.251.0"):
        if not re.fullmatch(r"[a-z][a-z0-9]{0,11}", prefix):
            raise ValueError(f"prefix {prefix!r}: 1-12 lowercase letters/digits (br-<prefix>: <= 15 chars)")
        ipaddress.IPv4Network(f"{subnet}.0/24")  # validates
        self.prefix, self.subnet = prefix, subnet
        self.bridge = f"br-{prefix}"
        self.gateway = f"{subnet}.1"
        self.nft_table = f"jhsalt_{prefix}"
        self.hosts = {}  # name -> Host, in creation order
        self._lock = None
        self._closing = False
        self._last_octet = 9  # hosts get .10, .11, ...
        self.uv_cache = CACHE / "uv-cache"  # shared by the hosts (see the top of this file); None: not

    def __repr__(self):
        return f"<TestNetwork {self.bridge} {self.subnet}.0/24 hosts={list(self.hosts)}>"

    @contextlib.contextmanager
    def own_hosts(self):
        """Stops, when the block ends (also by an error), every host booted inside it: a module's
        host names (salt, qmaster, ...) are free again for the next module on this network."""
        before = set(self.hosts)
        try:
            yield
        finally:
            for name, host in list(self.hosts.items()):
                if name not in before:
                    host.stop()

    def start(self):
        STATE.mkdir(parents=True, exist_ok=True)
        self._lock = open(STATE / f"{self.prefix}.lock", "a")
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.close()
            self._lock = None
            raise RuntimeError(f"another test run uses prefix {self.prefix!r}: "
                               "set JHSALT_TEST_PREFIX and JHSALT_TEST_SUBNET")
        _LIVE.append(self)
        _install_sigterm_handler()
        self._remove_leftovers()
        for net in json.loads(_sh("ip", "-j", "-4", "addr").stdout):
            for addr in net.get("addr_info", []):
                if addr["local"].startswith(self.subnet + ".") and net["ifname"] != self.bridge:
                    raise RuntimeError(f"{self.subnet}.0/24 is already used by {net['ifname']}: "
                                       "set JHSALT_TEST_SUBNET")
        _sh("ip", "link", "add", self.bridge, "type", "bridge")
        _sh("ip", "addr", "add", f"{self.gateway}/24", "dev", self.bridge)
        _sh("ip", "link", "set", self.bridge, "up")
        routes = json.loads(_sh("ip", "-j", "-4", "route", "show", "default").stdout)
        if not routes:
            raise RuntimeError("no IPv4 default route on the machine: nowhere to NAT the test network to")
        out_dev = routes[0]["dev"]
        _sh("nft", "-f", "-", input=f"""
            table ip {self.nft_table} {{
                chain postrouting {{
                    type nat hook postrouting priority srcnat; policy accept;
                    ip saddr {self.subnet}.0/24 ip daddr != {self.subnet}.0/24 oifname "{out_dev}" masquerade
                }}
            }}""")
        _ip_forward(self.prefix, True)
        return self

    def _remove_leftovers(self):
        """Undo what a killed run with this prefix left behind (we hold the prefix lock: none is alive)."""
        for top in _cgroup_dirs(self.prefix):
            _remove_cgroups([top])
        _unmount_all(WORK / self.prefix)
        _rmtree(WORK / self.prefix)
        for left in Path("/run/systemd/nspawn/propagate").glob(f"{self.prefix}-*"):
            shutil.rmtree(left, ignore_errors=True)
        self._remove_client_namespace()
        _sh("ip", "link", "del", self.bridge, check=False)
        _sh("nft", "delete", "table", "ip", self.nft_table, check=False)

    def close(self):
        """Stop all hosts and remove the network. Idempotent; also registered with atexit."""
        self._closing = True
        hosts = list(self.hosts.values())
        for host in hosts:
            host.terminate()  # all at once
        for host in hosts:
            with contextlib.suppress(Exception):
                host.stop()
        if self._lock:
            self._remove_client_namespace()
            _sh("nft", "delete", "table", "ip", self.nft_table, check=False)
            _sh("ip", "link", "del", self.bridge, check=False)
            _ip_forward(self.prefix, False)
            _rmtree(WORK / self.prefix)
            self._lock.close()
            self._lock = None
        if self in _LIVE:
            _LIVE.remove(self)

    def _next_address(self):
        """The next address of this network never used in this run (a reused one may sit in other
        hosts' ARP caches)."""
        used = {h.ip for h in self.hosts.values()}
        self._last_octet = next(n for n in range(self._last_octet + 1, 255) if f"{self.subnet}.{n}" not in used)
        return f"{self.subnet}.{self._last_octet}"

    # -- a client's own network namespace

    def client_namespace(self):
        """A network namespace with one address on this network and nothing else: for a client
        that must not see the machine's other interfaces come and go (Chromium aborts every request
        in flight, ERR_NETWORK_CHANGED, whenever any interface changes, e.g. when another test run
        boots a host). Run a program in it with ``ip netns exec <name>``; close() removes it."""
        name, outside, inside = f"{self.prefix}-client", f"{self.prefix}-cl0", f"{self.prefix}-cl1"
        if name not in _sh("ip", "netns", "list").stdout.split():
            address = self._next_address()
            _sh("ip", "netns", "add", name)
            _sh("ip", "link", "add", outside, "type", "veth", "peer", "name", inside)
            _sh("ip", "link", "set", inside, "netns", name)
            _sh("ip", "link", "set", outside, "master", self.bridge, "up")
            _sh("ip", "-n", name, "addr", "add", f"{address}/24", "dev", inside)
            _sh("ip", "-n", name, "link", "set", inside, "up")
            _sh("ip", "-n", name, "link", "set", "lo", "up")
        return name

    def _remove_client_namespace(self):
        _sh("ip", "netns", "del", f"{self.prefix}-client", check=False)
        _sh("ip", "link", "del", f"{self.prefix}-cl0", check=False)

    # -- hosts

    def add_host(self, name, template, *, ip=None, binds=(), shape="bridge"):
        """Boot a host named `name` (container <prefix>-<name>) from template, in one of SHAPES
        (how its name resolves on itself, see the top of this file); see Host."""
        if not NAME_RE.match(name):
            raise ValueError(f"host name {name!r}: lowercase letters, digits and dashes")
        if name in self.hosts:
            raise ValueError(f"host {name!r} exists already in {self}; stop() it first")
        used = {h.ip for h in self.hosts.values()}
        ip = ip or self._next_address()
        if ip in used or not ip.startswith(self.subnet + ".") or ip == self.gateway:
            raise ValueError(f"address {ip} for {name!r}: taken or not in {self.subnet}.0/24")
        host = Host(self, name, ip, binds, shape)
        self.hosts[name] = host
        try:
            host.start(template)
        except BaseException:
            host.stop()
            raise
        self._update_hosts_files(skip=host)
        return host

    def forget(self, host):
        if self.hosts.get(host.name) is host:
            del self.hosts[host.name]
            if not self._closing:
                self._update_hosts_files()

    def hosts_file(self, viewer):
        """/etc/hosts of `viewer`: its own name as its shape has it, the others' on the bridge."""
        lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback",
                 "ff02::1\tip6-allnodes", "ff02::2\tip6-allrouters",
                 f"# test hosts on {self.bridge} (tests/support/hosts.py)"]
        lines += [h.hosts_line(viewer) for h in self.hosts.values()]
        return "\n".join(line for line in lines if line) + "\n"

    def _update_hosts_files(self, skip=None):
        for host in self.hosts.values():
            if host is not skip and host.pid1:
                host.put_file("/etc/hosts", self.hosts_file(host))


# -------------------------------------------------------------------------------- cleanup on exit

_LIVE = []  # open TestNetworks


@atexit.register
def _close_all():
    for network in reversed(list(_LIVE)):
        network.close()


def _install_sigterm_handler():
    """SIGTERM (e.g. CI cancelling the job) -> KeyboardInterrupt, so pytest tears fixtures down."""
    def interrupt(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")
    with contextlib.suppress(ValueError):  # not in the main thread
        for sig in (signal.SIGTERM, signal.SIGHUP):
            if signal.getsignal(sig) == signal.SIG_DFL:
                signal.signal(sig, interrupt)
