"""Debian Postfix as a real peer: `smtp-sink` (an upstream with fault injection),
`smtp-source` (a load generator) and a private Postfix relay instance (`postfix_relay`, the
peer the benchmarks compare against). All are bounded and talk only to loopback."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


def tool(name: str) -> str:
    """Absolute path of a Postfix tool (they live in /usr/sbin, often not on PATH)."""
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/local/sbin")
    if found is None:
        raise FileNotFoundError(f"{name} not found: install Debian's postfix package")
    return found


def free_port() -> int:
    """A loopback port that was free a moment ago (smtp-sink cannot bind port 0 and report it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def smtp_sink(dump_dir: Path, *, extra: tuple[str, ...] = (), backlog: int = 256) -> Iterator[int]:
    """Run smtp-sink dumping every message as one file in `dump_dir`; yields its port."""
    dump_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    user = ("-u", "root") if os.geteuid() == 0 else ()
    proc = subprocess.Popen(  # a fixed Debian tool on loopback
        [
            tool("smtp-sink"),
            *user,
            "-d",
            f"{dump_dir}/%H%M%S.",
            *extra,
            f"127.0.0.1:{port}",
            str(backlog),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            break
        time.sleep(0.05)
    try:
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


def dumped(dump_dir: Path) -> list[Path]:
    """Messages smtp-sink has written so far."""
    return sorted(p for p in dump_dir.iterdir() if p.is_file())


# --------------------------------------------------------------------------- a private Postfix

_MASTER_CF = """\
127.0.0.1:{port} inet n - n - - smtpd
pickup unix n - n 60 1 pickup
cleanup unix n - n - 0 cleanup
qmgr unix n - n 300 1 qmgr
rewrite unix - - n - - trivial-rewrite
bounce unix - - n - 0 bounce
defer unix - - n - 0 bounce
trace unix - - n - 0 bounce
verify unix - - n - 1 verify
flush unix n - n 1000? 0 flush
proxymap unix - - n - - proxymap
smtp unix - - n - - smtp
relay unix - - n - - smtp
showq unix n - n - - showq
error unix - - n - - error
retry unix - - n - - error
discard unix - - n - - discard
local unix - n n - - local
anvil unix - - n - 1 anvil
scache unix - - n - 1 scache
postlog unix-dgram n - n - 1 postlogd
"""


@dataclass(frozen=True, slots=True)
class PostfixRelay:
    """A running private Postfix instance that relays everything to one SMTP port."""

    port: int
    config_dir: Path
    queue_dir: Path

    def master_pid(self) -> int:
        """The pid of Postfix's master process (the root of its process tree)."""
        return int((self.queue_dir / "pid" / "master.pid").read_text().strip())

    def postconf(self, *settings: str) -> None:
        """Change main.cf settings (``name=value``) and reload the instance."""
        _postfix_cmd(tool("postconf"), "-c", str(self.config_dir), "-e", *settings)
        _postfix_cmd(tool("postfix"), "-c", str(self.config_dir), "reload")


def _postfix_cmd(*argv: str) -> None:
    # The postfix command reports to syslog unless stderr is a terminal: keep its output.
    done = subprocess.run(argv, capture_output=True, timeout=60, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:3])} failed: {done.stdout!r} {done.stderr!r}")


@contextlib.contextmanager
def postfix_relay(
    workdir: Path,
    relay_port: int,
    *,
    main_cf: tuple[str, ...] = (),
    smtpd_options: tuple[str, ...] = (),
    services: tuple[str, ...] = (),
) -> Iterator[PostfixRelay]:
    """Run Debian's Postfix (as root) in its own config and queue directory under `workdir`,
    listening on a free loopback port and relaying all mail to ``[127.0.0.1]:relay_port``.

    `smtpd_options` are ``-o name=value`` overrides of that listener (as master.cf writes
    them, e.g. ``smtpd_proxy_filter=127.0.0.1:2525``); `services` are more master.cf lines
    (e.g. a re-injection listener). Chroot is off and logging goes to a file, so nothing
    outside `workdir` is touched. Stopped (``postfix stop``, then ``abort`` if needed) when
    the block exits.
    """
    if os.geteuid() != 0:
        raise PermissionError("a private Postfix instance needs root")
    import pwd

    config, queue, data = workdir / "conf", workdir / "queue", workdir / "data"
    for path in (config, queue, data):
        path.mkdir(parents=True, exist_ok=True)
    os.chown(data, pwd.getpwnam("postfix").pw_uid, -1)
    port = free_port()
    settings = {
        "compatibility_level": "3.6",
        "queue_directory": str(queue),
        "data_directory": str(data),
        "mail_owner": "postfix",
        "setgid_group": "postdrop",
        "myhostname": "bench-postfix.localdomain",
        "mydestination": "",
        "relayhost": f"[127.0.0.1]:{relay_port}",
        "inet_interfaces": "loopback-only",
        "inet_protocols": "ipv4",
        "mynetworks": "127.0.0.0/8",
        "smtpd_relay_restrictions": "permit_mynetworks reject",
        "alias_maps": "",
        "alias_database": "",
        "local_recipient_maps": "",
        "smtp_dns_support_level": "disabled",
        "maillog_file_prefixes": str(workdir),
        "maillog_file": str(workdir / "maillog"),
        "biff": "no",
    }
    for line in main_cf:  # the caller's settings replace the defaults (no duplicate entries)
        name, _, value = line.partition("=")
        settings[name.strip()] = value.strip()
    (config / "main.cf").write_text("".join(f"{k} = {v}\n" for k, v in settings.items()))
    master = _MASTER_CF.format(port=port).splitlines(keepends=True)
    overrides = "".join(f"  -o {option}\n" for option in smtpd_options)
    extra = "".join(f"{line}\n" for line in services)
    (config / "master.cf").write_text(master[0] + overrides + "".join(master[1:]) + extra)
    postfix = tool("postfix")
    _postfix_cmd(postfix, "-c", str(config), "start")
    relay = PostfixRelay(port=port, config_dir=config, queue_dir=queue)
    try:
        _wait_for_port(port, 20)
        yield relay
    finally:
        try:
            _postfix_cmd(postfix, "-c", str(config), "stop")
        except (RuntimeError, subprocess.TimeoutExpired):
            _postfix_cmd(postfix, "-c", str(config), "abort")


def _wait_for_port(port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port}")


# --------------------------------------------------------------------------- recipe files


@dataclass(frozen=True, slots=True)
class Service:
    """One master.cf entry: its first line and its ``-o name=value`` options."""

    name: str
    line: str
    options: tuple[str, ...]

    def lines(self, options: tuple[str, ...] | None = None) -> tuple[str, ...]:
        """The entry as master.cf lines (with other options, if given)."""
        chosen = self.options if options is None else options
        return (self.line, *(f"  -o {option}" for option in chosen))


def read_master_cf(text: str) -> dict[str, Service]:
    """The entries of a master.cf text by service name (comments and blank lines skipped)."""
    services: dict[str, Service] = {}
    current: Service | None = None
    for raw in text.splitlines():
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        if raw[0].isspace():
            if current is None:
                raise ValueError(f"an option before any service: {raw!r}")
            flag, _, option = raw.strip().partition(" ")
            if flag != "-o":
                raise ValueError(f"only -o options are read: {raw!r}")
            current = Service(current.name, current.line, (*current.options, option.strip()))
        else:
            current = Service(raw.split()[0], " ".join(raw.split()), ())
        services[current.name] = current
    return services


def read_main_cf(text: str) -> tuple[str, ...]:
    """The ``name = value`` lines of a main.cf text (comments and blank lines skipped)."""
    return tuple(
        " ".join(line.split())
        for line in text.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    )
