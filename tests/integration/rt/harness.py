"""A real Request Tracker 5 and a real connector, both on loopback, for the integration suite.

:class:`RTServer` runs Debian's RT 5 (``request-tracker5``, ``rt5-db-sqlite``,
``rt5-standalone``) from a temporary folder: its own site config (RT reads
``RT_SITE_CONFIG`` and ``RT_SITE_CONFIG_DIR``, so nothing under /etc is read or written), its
own SQLite database, RT's standalone server on a free port. :class:`RTApi` talks to it through
REST 2.0 as one RT user. :class:`ConnectorServer` runs ``care-connector run`` (web server and
workers in one process) with its own config and SQLite database.

Every process is started here, in its own session, and stopped here by its own id.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import requests

RT_SERVER = Path("/usr/share/request-tracker5/libexec/rt-server")
RT_LIB = Path("/usr/share/request-tracker5/lib")
RT_SETUP = "rt-setup-database-5"
#: Whether RT 5 is installed here (CI installs it in .ci/run).
HAVE_RT = RT_SERVER.exists() and shutil.which(RT_SETUP) is not None

ROOT_PASSWORD = "password"  # RT's initial root password (rt-setup-database --action init)
CONNECTOR_USER = "care-connector"
CONNECTOR_PASSWORD = "care-connector-pass-7"
START_TIMEOUT = 90.0
REPO = Path(__file__).resolve().parents[3]

T = TypeVar("T")


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(
    what: str,
    probe: Callable[[], T | None],
    *,
    timeout: float = 30.0,
    every: float = 0.2,
    about: Callable[[], object] | None = None,
) -> T:
    """Call ``probe`` until it returns something other than ``None``/``False``.

    :raises AssertionError: ``timeout`` seconds passed; the message says what was awaited and
        the last error the probe raised.
    """
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while True:
        try:
            value = probe()
            if value is not None and value is not False:
                return value
        except (requests.RequestException, OSError, ValueError, KeyError) as err:
            last = err
        if time.monotonic() > deadline:
            state = f"\n{about()}" if about is not None else ""
            raise AssertionError(
                f"timed out after {timeout:g} s waiting for {what} ({last!r}){state}"
            )
        time.sleep(every)


def _run(
    argv: list[str],
    *,
    env: dict[str, str],
    cwd: Path,
    timeout: float,
    what: str,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """``argv`` to its end, no input, output captured; with ``check``, an exit other than 0
    fails the test with ``what`` and the output."""
    done = subprocess.run(
        argv,
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    if check and done.returncode != 0:
        raise AssertionError(f"{what}: {done.stdout}{done.stderr}")
    return done


def _stop(process: subprocess.Popen[bytes] | None, *, timeout: float = 15.0) -> None:
    """Stop a process this module started (its whole session), by its id."""
    if process is None or process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=timeout)


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


# --------------------------------------------------------------------------------------------
# RT


SITE_CONFIG = """\
Set($rtname, 'care-it');
Set($Organization, 'care-it.test');
Set($DatabaseType, 'SQLite');
Set($DatabaseName, '{database}');
Set($WebPath, '');
Set($WebDomain, '127.0.0.1');
Set($WebPort, {port});
Set($WebBaseURL, 'http://127.0.0.1:{port}');
Set($Timezone, 'UTC');
Set($LogToSTDERR, 'warning');
Set($LogToSyslog, undef);
Set($LogToFile, undef);
Set($CorrespondAddress, 'support@care-it.test');
Set($CommentAddress, 'support-comment@care-it.test');
# Outgoing mail goes to temporary files, never to a mail server.
Set($MailCommand, 'testfile');
# Passwords are checked on every REST 2.0 request (basic auth): the cheapest bcrypt cost keeps
# the suite's users fast to check (RT's default, 12, costs a quarter of a second each).
Set($BcryptCost, 4);
1;
"""

#: The RT users and rights the suite needs: the connector's own user (privileged, with the
#: rights docs/desks/rt.md lists) and customers who reply through REST 2.0 with a password.
USERS = """\
@Users = (
{users}
);
@ACL = (
    ( map {{ {{ UserId => '{connector}', Right => $_ }} }}
        qw(SeeQueue ShowTicket ShowTicketComments CreateTicket ModifyTicket CommentOnTicket
           ReplyToTicket AdminUsers) ),
    ( map {{ {{ GroupDomain => 'SystemInternal', GroupType => 'Everyone', Right => $_ }} }}
        qw(CreateTicket ReplyToTicket) ),
    ( map {{ {{ GroupDomain => 'RT::System-Role', GroupType => 'Requestor', Right => $_ }} }}
        qw(ShowTicket) ),
);
1;
"""

#: Opens a ticket through RT's own Perl API, with RT's web server stopped: RT runs the
#: transaction's scrips in this process, so the connector's scrip posts as usual.
OFFLINE_TICKET = """\
use strict;
use warnings;
use lib '{lib}';
use RT;
use MIME::Entity;
RT::LoadConfig();
RT::Init();
my ( $requestor, $subject, $content ) = @ARGV;
my $user = RT::CurrentUser->new;
$user->Load($requestor);
die "no RT user $requestor\\n" unless $user->id;
my $ticket = RT::Ticket->new($user);
my ( $id, undef, $msg ) = $ticket->Create(
    Queue     => 'General',
    Subject   => $subject,
    Requestor => [$requestor],
    MIMEObj   => MIME::Entity->build(
        Type => 'text/plain', Charset => 'UTF-8', Data => [$content]
    ),
);
die "ticket not created: $msg\\n" unless $id;
print "$id\\n";
"""


@dataclass(frozen=True)
class Customer:
    """An RT user who is one of the connector's customers."""

    email: str
    password: str


def _perl(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


class RTServer:
    """RT 5 with its own site config, SQLite database and standalone server on loopback."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.database = root / "rt.sqlite3"
        self.site_config = root / "RT_SiteConfig.pm"
        self.site_dir = root / "RT_SiteConfig.d"
        self.log = root / "rt-server.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.site_dir.mkdir(parents=True, exist_ok=True)
        self.site_config.write_text(
            SITE_CONFIG.format(database=self.database, port=self.port), encoding="utf-8"
        )

    @property
    def env(self) -> dict[str, str]:
        """The environment RT's tools need to find this instance."""
        return {
            **os.environ,
            "RT_SITE_CONFIG": str(self.site_config),
            "RT_SITE_CONFIG_DIR": str(self.site_dir),
        }

    def _setup(self, *args: str) -> str:
        what = f"{RT_SETUP} {' '.join(args)} failed"
        argv = [RT_SETUP, *args, "--skip-create"]
        return _run(argv, env=self.env, cwd=self.root, timeout=180, what=what).stdout

    def init_database(self) -> None:
        """``rt-setup-database-5 --action init``: schema, core objects, initial data."""
        self._setup("--action", "init")

    def insert(self, name: str, text: str) -> str:
        """Apply an initialdata file (``--action insert``)."""
        datafile = self.root / name
        datafile.write_text(text, encoding="utf-8")
        return self._setup("--action", "insert", "--datafile", str(datafile))

    def add_users(self, customers: list[Customer]) -> None:
        """The connector's user and the customers (see :data:`USERS`)."""
        rows = [
            f"    {{ Name => '{CONNECTOR_USER}', EmailAddress => 'care-connector@care-it.test', "
            f"RealName => 'Care Connector', Password => {_perl(CONNECTOR_PASSWORD)}, "
            "Privileged => 1 },"
        ]
        rows += [
            f"    {{ Name => {_perl(c.email)}, EmailAddress => {_perl(c.email)}, "
            f"Password => {_perl(c.password)}, Privileged => 0 }},"
            for c in customers
        ]
        self.insert(
            "users.initialdata", USERS.format(users="\n".join(rows), connector=CONNECTOR_USER)
        )

    def start(self) -> None:
        """Start RT's standalone server (one process) and wait until REST 2.0 answers."""
        assert self.process is None or self.process.poll() is not None
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [str(RT_SERVER), "--server", "Standalone", "--port", str(self.port)],
                env=self.env,
                cwd=self.root,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        root = self.api("root", ROOT_PASSWORD)

        def ready() -> bool:
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(f"rt-server exited:\n{_tail(self.log)}")
            return root.session.get(f"{root.base}/rt", timeout=2).status_code == 200

        wait_for("RT's REST 2.0 API", ready, timeout=START_TIMEOUT)

    def stop(self) -> None:
        """Stop the server; the database stays."""
        _stop(self.process)
        self.process = None

    def api(self, user: str, password: str) -> RTApi:
        return RTApi(self.url, user, password)

    def offline_ticket(self, requestor: str, subject: str, content: str) -> str:
        """Open a ticket with RT's web server stopped (see :data:`OFFLINE_TICKET`)."""
        script = self.root / "offline_ticket.pl"
        script.write_text(OFFLINE_TICKET.format(lib=RT_LIB), encoding="utf-8")
        done = _run(
            ["perl", str(script), requestor, subject, content],
            env=self.env,
            cwd=self.root,
            timeout=120,
            what="offline ticket failed",
        )
        return done.stdout.strip().splitlines()[-1]

    def log_tail(self) -> str:
        return _tail(self.log)


class RTApi:
    """REST 2.0 as one RT user (basic auth)."""

    def __init__(self, url: str, user: str, password: str) -> None:
        self.base = f"{url}/REST/2.0"
        self.user = user
        self.session = requests.Session()
        self.session.auth = (user, password)
        self.session.headers["Content-Type"] = "application/json"
        # RT's standalone server answers one request per connection anyway.
        self.session.headers["Connection"] = "close"

    def _ok(self, response: requests.Response) -> Any:
        if not 200 <= response.status_code < 300:
            raise AssertionError(
                f"{response.request.method} {response.url} as {self.user}: "
                f"HTTP {response.status_code}: {response.text[:500]}"
            )
        return response.json() if response.content else None

    def get(self, path: str, **params: Any) -> Any:
        return self._ok(self.session.get(f"{self.base}{path}", params=params, timeout=30))

    def create_ticket(self, subject: str, content: str, requestor: str) -> str:
        body = {
            "Queue": "General",
            "Subject": subject,
            "Requestor": requestor,
            "Content": content,
            "ContentType": "text/plain",
        }
        answer = self._ok(self.session.post(f"{self.base}/ticket", json=body, timeout=30))
        return str(answer["id"])

    def correspond(self, ticket_id: str, content: str) -> None:
        body = {"Content": content, "ContentType": "text/plain"}
        self._ok(
            self.session.post(f"{self.base}/ticket/{ticket_id}/correspond", json=body, timeout=30)
        )

    def user_id(self, name: str) -> str:
        return str(self.get(f"/user/{name}")["id"])

    def ticket(self, ticket_id: str) -> dict[str, Any]:
        data: dict[str, Any] = self.get(f"/ticket/{ticket_id}")
        return data

    def field_values(self, ticket_id: str, name: str) -> list[str]:
        for field in self.ticket(ticket_id).get("CustomFields") or []:
            if field.get("name") == name:
                return list(field.get("values") or [])
        return []

    def _items(self, path: str, **params: Any) -> Iterator[dict[str, Any]]:
        page = 1
        while True:
            data = self.get(path, page=page, per_page=100, **params)
            yield from data["items"]
            if page >= int(data.get("pages") or 1):
                return
            page += 1

    def history(self, ticket_id: str) -> list[Transaction]:
        """The ticket's transactions, oldest first, each with the text of its message (the
        history is read first, so every transaction listed has its text)."""
        items = list(
            self._items(f"/ticket/{ticket_id}/history", fields="Type,Creator,Field,NewValue")
        )
        texts: dict[str, list[str]] = {}
        for item in self._items(
            f"/ticket/{ticket_id}/attachments", fields="Content,ContentType,TransactionId"
        ):
            if item.get("ContentType") == "text/plain" and item.get("Content"):
                texts.setdefault(str(item["TransactionId"]), []).append(item["Content"])
        return [
            Transaction(
                id=str(item["id"]),
                type=item["Type"],
                creator=item["Creator"]["id"],
                field=item.get("Field") or "",
                new_value=item.get("NewValue") or "",
                text="\n".join(texts.get(str(item["id"]), [])),
            )
            for item in items
        ]


@dataclass(frozen=True)
class Transaction:
    """One entry of a ticket's history, as the suite reads it."""

    id: str
    type: str
    creator: str
    field: str
    new_value: str
    text: str


# --------------------------------------------------------------------------------------------
# The connector


class ConnectorServer:
    """``care-connector run`` on loopback with its own config and SQLite database."""

    def __init__(self, root: Path, rt: RTServer, *, api_user_id: str, secret: str) -> None:
        self.root = root
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.database = root / "care-connector.sqlite3"
        self.config = root / "config.toml"
        self.log = root / "connector.log"
        self.secret = secret
        self.api_user_id = api_user_id
        self.rt = rt
        self.process: subprocess.Popen[bytes] | None = None
        #: What the first ``webhooks install`` printed.
        self.install_output = ""
        self.config.write_text(
            f"""[database]
url = "sqlite:///{self.database}"

[server]
public_url = "{self.url}"

[desks.rt]
adapter = "rt"
base_url = "{rt.url}"
secret_env = ["CARE_IT_RT_SECRET"]
username = "{CONNECTOR_USER}"
password_env = "CARE_IT_RT_PASSWORD"
api_user_id = "{api_user_id}"
timeout = 15
max_attempts = 20
""",
            encoding="utf-8",
        )

    @property
    def env(self) -> dict[str, str]:
        env = {
            **self.rt.env,
            "CARE_CONFIG": str(self.config),
            "CARE_IT_RT_SECRET": self.secret,
            "CARE_IT_RT_PASSWORD": CONNECTOR_PASSWORD,
            "PYTHONPATH": str(REPO),
        }
        env.pop("CARE_DATABASE_URL", None)
        return env

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """``care-connector ARGS`` with this config."""
        return _run(
            [sys.executable, "-m", "connector.cli", *args],
            env=self.env,
            cwd=self.root,
            timeout=240,
            what=f"care-connector {' '.join(args)}",
            check=check,
        )

    def import_customers(self, entries: list[Mapping[str, Any]]) -> None:
        path = self.root / "customers.json"
        path.write_text(json.dumps({"customers": entries}), encoding="utf-8")
        self.cli("customers", "import", str(path))

    def install(self) -> str:
        """``webhooks install --desk rt --url <this connector>``; what it printed."""
        return self.cli("webhooks", "install", "--desk", "rt", "--url", self.url).stdout

    def start(self) -> None:
        """Start the web server with the workers in its threads; wait until it answers."""
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "connector.cli",
                    "run",
                    "--port",
                    str(self.port),
                    "--no-scheduler",
                ],
                env=self.env,
                cwd=self.root,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

        def ready() -> bool:
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(f"the connector exited:\n{_tail(self.log)}")
            return requests.get(f"{self.url}/healthz", timeout=2).status_code in (200, 503)

        wait_for("the connector", ready, timeout=START_TIMEOUT)

    def stop(self) -> None:
        _stop(self.process)
        self.process = None

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        """Read the connector's SQLite database (the suite never writes to it)."""
        with closing(sqlite3.connect(f"file:{self.database}?mode=ro", uri=True, timeout=10)) as db:
            return list(db.execute(sql, params))

    def log_tail(self) -> str:
        return _tail(self.log)
