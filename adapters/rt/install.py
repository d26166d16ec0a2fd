"""``care-connector webhooks install`` for Request Tracker: an initialdata file.

RT has no webhooks and its REST API cannot create scrips, so the connector writes an
*initialdata* file (RT's own format for loading configuration, a Perl file) whose final action
creates or updates, found by name:

* the multi-value custom field holding the connector's tags (``options.tags_field``, default
  ``Care``), applied to every queue when it is new, with the rights to see and change it
  granted to the connector's own RT user;
* one global scrip, ``Care Connector (<desk>): webhook``, with a *User Defined* condition
  (transactions ``Create``, ``Correspond``, ``Comment``, ``CustomField`` and ``Status``; the
  loop guard leaves out every transaction made by the connector's user, and RT's own reopening
  of a ticket on correspondence, which the connector's replies cause) and a *User Defined*
  action that posts the transaction as JSON to ``<public url>/hooks/<desk>``, signed
  ``X-Care-Signature: sha256=<hex HMAC-SHA256(secret, body)>``, with
  ``X-Care-Delivery: <transaction id>``. It uses ``JSON``, ``Digest::SHA`` and ``HTTP::Tiny``,
  which RT depends on; it tries twice (5 s each) and logs a delivery it could not make.

Applying the file again updates the scrip's code (a new URL or secret) and never adds a second
scrip or field. Where RT runs on this machine (``base_url`` on loopback and
``rt-setup-database-5`` found; desk option ``install = "auto"``, the default) the file is
applied with ``rt-setup-database-5 --action insert --datafile FILE --skip-create`` (the
command is ``options.setup_command``; RT reads its configuration as usual, ``RT_SITE_CONFIG``
included). Otherwise (``install = "print"``, or RT elsewhere) the file and the exact command
are printed for the RT admin. ``install = "apply"`` applies whatever the host.
"""

from __future__ import annotations

import ipaddress
import os
import re
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit

from adapters.base import DeskConfig, hook_endpoint, option_choice, secret_env_name
from adapters.errors import HelpdeskAPIError
from adapters.rt.client import DEFAULT_TAGS_FIELD

__all__ = [
    "DEFAULT_SETUP_COMMAND",
    "INSTALL_MODES",
    "TRANSACTION_TYPES",
    "RTInstallPlan",
    "RTInstallResult",
    "execute",
    "initialdata",
    "plan",
    "scrip_code",
]

InstallMode = Literal["auto", "apply", "print"]

#: Values of the desk option ``install``.
INSTALL_MODES: tuple[InstallMode, ...] = ("auto", "apply", "print")
#: RT 5's database tool as Debian installs it (``/opt/rt5/sbin/rt-setup-database`` from source).
DEFAULT_SETUP_COMMAND = "rt-setup-database-5"
#: The transactions the scrip sends.
TRANSACTION_TYPES = ("Create", "Correspond", "Comment", "CustomField", "Status")
#: What the final action prints when it has done everything; anything else is a failure.
DONE_LINE = "care-connector: done"
#: Seconds ``rt-setup-database`` may take.
SETUP_TIMEOUT = 300

_USER_ID_RE = re.compile(r"[0-9]{1,18}")
_FIELD_RE = re.compile(r"[^\x00-\x1f\x7f]{1,200}")


def perl_string(value: str) -> str:
    """``value`` as a single-quoted Perl string literal."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def scrip_description(desk_key: str) -> str:
    """The scrip's name in RT, by which a new install finds the old one."""
    return f"Care Connector ({desk_key}): webhook"


def condition_code(api_user_id: str) -> str:
    """The scrip's *User Defined* condition: the handled transaction types, and the loop
    guard on the connector's own RT user."""
    types = " ".join(TRANSACTION_TYPES)
    return f"""# Care Connector: the transactions sent to the connector.
my $txn = $self->TransactionObj;
# Loop guard: nothing the connector's own RT user did.
return 0 if $txn->Creator == {api_user_id};
# RT reopening a ticket on correspondence: the Correspond itself is sent (unless the
# connector wrote it), with the ticket's new status.
return 0 if $txn->Type eq 'Status' && $txn->Creator == RT->SystemUser->id
    && ( $txn->NewValue // '' ) eq 'open';
my %send = map {{ $_ => 1 }} qw({types});
return $send{{ $txn->Type }} ? 1 : 0;
"""


def scrip_code(endpoint: str, secret: str) -> str:
    """The scrip's *User Defined* action (commit code): build, sign and post the body that
    :mod:`adapters.rt.schemas` reads."""
    return f"""# Care Connector: post this transaction, signed, to the connector.
use Digest::SHA ();
use HTTP::Tiny ();
use JSON ();
my $url = {perl_string(endpoint)};
my $secret = {perl_string(secret)};
my $txn = $self->TransactionObj;
my $ticket = $self->TicketObj;
my $date = sub {{
    my $d = shift;
    return ( $d && $d->Unix > 0 ) ? $d->W3CDTF( Timezone => 'utc' ) : undef;
}};
my $user = sub {{
    my $u = shift;
    return undef unless $u && $u->id;
    return {{
        id => 0 + $u->id, name => $u->Name, email => $u->EmailAddress // '',
        real_name => $u->RealName // '', lang => $u->Lang // '',
    }};
}};
my @requestors = map {{ $user->($_) }} @{{ $ticket->Requestors->UserMembersObj->ItemsArrayRef }};
my %fields;
my $cfs = $ticket->CustomFields;
while ( my $cf = $cfs->Next ) {{
    $fields{{ $cf->Name }} =
        [ map {{ $_->Content }} @{{ $ticket->CustomFieldValues( $cf->id )->ItemsArrayRef }} ];
}}
my %message;
if ( $txn->Type =~ /^(?:Create|Correspond|Comment)$/ ) {{
    my $part = $txn->ContentObj( Type => 'text/plain' );
    %message = (
        content => $part ? $txn->Content( Type => 'text/plain' ) : '',
        content_type => $part ? $part->ContentType : '',
    );
}}
my $body = JSON->new->utf8->canonical->encode({{
    care_connector => 1,
    rt => {{ name => RT->Config->Get('rtname'), version => $RT::VERSION }},
    transaction => {{
        id => 0 + $txn->id, type => $txn->Type, field => $txn->Field // '',
        old_value => $txn->OldValue // '', new_value => $txn->NewValue // '',
        created => $date->( $txn->CreatedObj ), creator => $user->( $txn->CreatorObj ),
        %message,
    }},
    ticket => {{
        id => 0 + $ticket->id, subject => $ticket->Subject // '',
        queue => $ticket->QueueObj->Name, status => $ticket->Status,
        priority => 0 + ( $ticket->Priority // 0 ), created => $date->( $ticket->CreatedObj ),
        requestors => \\@requestors, custom_fields => \\%fields,
    }},
}});
my %headers = (
    'Content-Type' => 'application/json',
    'X-Care-Signature' => 'sha256=' . Digest::SHA::hmac_sha256_hex( $body, $secret ),
    'X-Care-Delivery' => $txn->id,
);
my $http = HTTP::Tiny->new( timeout => 5, verify_SSL => 1, agent => 'RT-Care-Connector/1' );
for my $try ( 1 .. 2 ) {{
    my $answer = $http->post( $url, {{ headers => \\%headers, content => $body }} );
    return 1 if $answer->{{success}};
    RT->Logger->error( 'Care Connector: transaction ' . $txn->id . ' of ticket ' . $ticket->id
        . " not delivered to $url (try $try of 2): $answer->{{status}} $answer->{{reason}}" );
    last if $answer->{{status}} >= 400 && $answer->{{status}} < 500
        && $answer->{{status}} != 408 && $answer->{{status}} != 429;
    sleep 1 if $try < 2;
}}
return 1;
"""


def initialdata(install: RTInstallPlan, secret: str) -> str:
    """The initialdata file: a final action that creates or updates the field and the scrip."""
    return f"""# Care Connector for Request Tracker: the webhook scrip and the tags field of desk
# {install.desk!r}. Generated by `care-connector webhooks install`; safe to apply again
# (it updates what an earlier run created, found by name, and never adds a second one):
#   {install.command_line("THIS_FILE")}
# It holds the webhook signing secret: keep it private, delete it once applied.

@Final = (sub {{
    my $system = RT->SystemUser;
    my $say = sub {{ print 'care-connector: ', @_, "\\n" }};

    my $own = RT::User->new($system);
    $own->Load({install.api_user_id});
    die "care-connector: RT has no user {install.api_user_id} (the desk's api_user_id)\\n"
        unless $own->id;

    # The tags field: multi-value, on tickets; applied to every queue when new.
    my $field_name = {perl_string(install.tags_field)};
    my $cf = RT::CustomField->new($system);
    $cf->LoadByName( Name => $field_name, LookupType => RT::Ticket->CustomFieldLookupType );
    if ( $cf->id ) {{
        if ( $cf->SingleValue ) {{
            my ( $ok, $msg ) = $cf->SetMaxValues(0);
            die "care-connector: field $field_name: $msg\\n" unless $ok;
            $say->("updated custom field '$field_name' (", $cf->id, '): multiple values');
        }} else {{
            $say->("unchanged custom field '$field_name' (", $cf->id, ')');
        }}
        $cf->SetDisabled(0) if $cf->Disabled;
    }} else {{
        my ( $ok, $msg ) = $cf->Create(
            Name        => $field_name,
            Type        => 'Freeform',
            MaxValues   => 0,
            LookupType  => RT::Ticket->CustomFieldLookupType,
            Description => 'Care Connector: support plan and state of the ticket',
        );
        die "care-connector: field $field_name: $msg\\n" unless $ok;
        $say->("created custom field '$field_name' (", $cf->id, ')');
    }}
    unless ( $cf->IsAddedToAny ) {{
        my ( $ok, $msg ) = $cf->AddToObject( RT::Queue->new($system) );
        die "care-connector: field $field_name: $msg\\n" unless $ok;
    }}
    for my $right (qw(SeeCustomField ModifyCustomField)) {{
        $own->PrincipalObj->GrantRight( Right => $right, Object => $cf )
            unless $own->PrincipalObj->HasRight( Right => $right, Object => $cf );
    }}

    # The webhook scrip, found by its description.
    my $description = {perl_string(install.description)};
    my %code = (
        CustomIsApplicableCode => <<'CARE_CONDITION',
{condition_code(install.api_user_id)}CARE_CONDITION
        CustomPrepareCode => "return 1;\\n",
        CustomCommitCode => <<'CARE_ACTION',
{scrip_code(install.endpoint, secret)}CARE_ACTION
    );
    my $scrips = RT::Scrips->new($system);
    $scrips->Limit( FIELD => 'Description', VALUE => $description );
    my @found = @{{ $scrips->ItemsArrayRef }};
    if ( my $scrip = shift @found ) {{
        my $changed = 0;
        for my $column ( sort keys %code ) {{
            next if ( $scrip->_Value($column) // '' ) eq $code{{$column}};
            my $set = "Set$column";
            my ( $ok, $msg ) = $scrip->$set( $code{{$column}} );
            die "care-connector: scrip $description: $msg\\n" unless $ok;
            $changed = 1;
        }}
        if ( $scrip->Disabled ) {{
            $scrip->SetDisabled(0);
            $changed = 1;
        }}
        my $state = $changed ? 'updated' : 'unchanged';
        $say->("$state scrip '$description' (", $scrip->id, ')');
        for my $extra (@found) {{
            $extra->SetDisabled(1);
            $say->("disabled a second scrip '$description' (", $extra->id, ')');
        }}
    }} else {{
        my $scrip = RT::Scrip->new($system);
        my ( $ok, $msg ) = $scrip->Create(
            Queue          => 0,
            Description    => $description,
            ScripCondition => 'User Defined',
            ScripAction    => 'User Defined',
            Template       => 'Blank',
            Stage          => 'TransactionCreate',
            %code,
        );
        die "care-connector: scrip $description: $msg\\n" unless $ok;
        $say->("created scrip '$description' (", $scrip->id, ')');
    }}
    $say->('done');
}});

1;
"""


@dataclass(frozen=True, slots=True)
class RTInstallPlan:
    """What ``webhooks install`` creates or updates in one RT."""

    desk: str
    endpoint: str
    api_user_id: str
    tags_field: str
    mode: InstallMode
    local: bool
    setup_command: str
    secret_env: str
    configured_secret: str | None = field(default=None, repr=False)

    @property
    def description(self) -> str:
        """The scrip's name in RT."""
        return scrip_description(self.desk)

    @property
    def applies(self) -> bool:
        """Whether :func:`execute` runs ``rt-setup-database`` (else it prints the file)."""
        return self.mode == "apply" or (self.mode == "auto" and self.local)

    def command(self, datafile: str) -> list[str]:
        """The command that applies ``datafile``."""
        return [self.setup_command, "--action", "insert", "--datafile", datafile, "--skip-create"]

    def command_line(self, datafile: str) -> str:
        """:meth:`command` as one shell line."""
        return " ".join(self.command(datafile))

    def describe(self) -> list[str]:
        """One line per object, then how it is applied."""
        types = ", ".join(TRANSACTION_TYPES)
        lines = [
            f"custom field {self.tags_field!r}: multiple values, the connector's tags",
            f"scrip {self.description!r}: POST {self.endpoint} on {types} "
            f"(signed; loop guard: not by RT user {self.api_user_id})",
        ]
        if self.applies:
            lines.append(f"applied here with {self.setup_command}")
        else:
            lines.append("printed, with the command for the RT admin")
        if self.configured_secret is None:
            lines.append(f"a new signing secret will be generated (none in {self.secret_env})")
        return lines


@dataclass(frozen=True, slots=True)
class RTInstallResult:
    """What :func:`execute` did.

    :param applied: whether ``rt-setup-database`` ran; else ``datafile`` holds the file to
        hand to the RT admin.
    :param output: the final action's report (applied) or the file and the command (printed).
    """

    secret: str | None
    secret_env: str
    generated: bool
    applied: bool
    output: tuple[str, ...] = ()
    datafile: str = field(default="", repr=False)

    def describe(self) -> list[str]:
        """The report, then what to do with the secret."""
        lines = list(self.output)
        if self.generated:
            lines.append(
                f"set {self.secret_env} to {self.secret} (a new webhook signing secret, also "
                "in the scrip)"
            )
        else:
            lines.append(f"the scrip signs with the current secret of {self.secret_env}")
        return lines


def is_loopback(url: str) -> bool:
    """Whether ``url``'s host is this machine (``localhost``, 127.0.0.0/8, ``::1``)."""
    host = (urlsplit(url).hostname or "").strip().lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def plan(
    public_url: str, desk: DeskConfig, *, which: Callable[[str], str | None] = shutil.which
) -> RTInstallPlan:
    """What to install in ``desk``'s RT so that it posts to ``<public_url>/hooks/<desk key>``.

    :param which: finds the setup command (:func:`shutil.which`; tests pass their own).
    :raises ValueError: a bad URL, no (or a non-numeric) ``api_user_id``, an unknown
        ``options.install``, or a bad ``options.tags_field``.
    """
    endpoint = hook_endpoint(public_url, desk.key)
    api_user = (desk.api_user_id or "").strip()
    if not _USER_ID_RE.fullmatch(api_user):
        raise ValueError(
            f"desk {desk.key!r}: api_user_id must be the numeric id of the connector's own RT "
            f"user (the scrip's loop guard), got {api_user!r}"
        )
    install_mode = option_choice(desk, "install", INSTALL_MODES, "auto")
    tags_field = str(desk.options.get("tags_field", DEFAULT_TAGS_FIELD)).strip()
    if not _FIELD_RE.fullmatch(tags_field):
        raise ValueError(f"desk {desk.key!r}: options.tags_field {tags_field!r} is not a name")
    command = str(desk.options.get("setup_command", DEFAULT_SETUP_COMMAND)).strip()
    if not command:
        raise ValueError(f"desk {desk.key!r}: options.setup_command must not be empty")
    found = which(command)
    secret_env = secret_env_name(desk)
    return RTInstallPlan(
        desk=desk.key,
        endpoint=endpoint,
        api_user_id=api_user,
        tags_field=tags_field,
        mode=install_mode,
        local=is_loopback(desk.base_url) and found is not None,
        setup_command=command,
        secret_env=secret_env,
        configured_secret=next((s for s in desk.secrets if s), None),
    )


def _new_secret() -> str:
    return secrets.token_urlsafe(32)


Runner = Callable[[Sequence[str]], "subprocess.CompletedProcess[str]"]


def _run(command: Sequence[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(command),
        capture_output=True,
        text=True,
        timeout=SETUP_TIMEOUT,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def execute(
    install: RTInstallPlan,
    *,
    make_secret: Callable[[], str] = _new_secret,
    run: Runner = _run,
) -> RTInstallResult:
    """Apply the initialdata file with ``rt-setup-database``, or return it for the RT admin.

    :param make_secret: the generator of a new secret when the desk has none.
    :param run: runs the setup command (tests pass their own).
    :raises HelpdeskAPIError: the command failed or did not finish (permanent); what it did
        before stays done, and running the install again completes it.
    """
    generated = install.configured_secret is None
    secret = make_secret() if generated else install.configured_secret
    assert secret is not None
    text = initialdata(install, secret)
    if not install.applies:
        name = f"care-connector-{install.desk}.initialdata"
        output = (
            f"# Save the lines between the markers as {name} on the RT server, then run:",
            f"#   {install.command_line(name)}",
            "# ----- begin -----",
            *text.splitlines(),
            "# ----- end -----",
        )
        return RTInstallResult(
            secret=secret,
            secret_env=install.secret_env,
            generated=generated,
            applied=False,
            output=output,
            datafile=text,
        )
    fd, path = tempfile.mkstemp(prefix=f"care-connector-{install.desk}-", suffix=".initialdata")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:  # mkstemp: readable by us only
            handle.write(text)
        try:
            done = run(install.command(path))
        except (OSError, subprocess.SubprocessError) as err:
            raise HelpdeskAPIError(f"{install.command_line(path)}: {err}", permanent=True) from err
    finally:
        os.unlink(path)
    report = [line for line in done.stdout.splitlines() if line.startswith("care-connector: ")]
    if done.returncode != 0 or DONE_LINE not in report:
        details = " ".join((done.stderr or done.stdout or "").split())[-1500:]
        raise HelpdeskAPIError(
            f"{install.setup_command} exited with {done.returncode} before the install was "
            f"done: {details or 'no output'}",
            permanent=True,
        )
    return RTInstallResult(
        secret=secret,
        secret_env=install.secret_env,
        generated=generated,
        applied=True,
        output=tuple(line.removeprefix("care-connector: ") for line in report if line != DONE_LINE),
    )
