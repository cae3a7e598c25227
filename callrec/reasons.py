"""Why a call is not (or no longer) recorded: the manifest's ``status_reason``.

One list, so that the metrics' ``reason`` label, the README and the archive's filter speak of the
same things. The dialplan sets ``app_down`` itself (dialplan/callrec.conf) when callrec is away.
"""

from __future__ import annotations

from enum import StrEnum


class StatusReason(StrEnum):
    # unrecorded: the recording never started or was never proven (no notice was played)
    POLICY_NEVER = "policy_never"  # the DID's (or call's) policy is never
    AMI_UNAVAILABLE = "ami_unavailable"  # AMI not connected: MixMonitor cannot be started
    PROMPT_MISSING = "prompt_missing"  # the notice is not installed in the call's language
    SPOOL_MISSING = "spool_missing"
    SPOOL_UNWRITABLE = "spool_unwritable"
    SPOOL_FULL = "spool_full"  # less free space than spool.min_free_mb
    MIXMONITOR_REFUSED = "mixmonitor_refused"  # AMI refused the action or its reply was lost
    MIXMONITOR_UNVERIFIED = "mixmonitor_unverified"  # not proven within notice.verify_timeout_s
    RECORDING_STOPPED_BEFORE_NOTICE = "recording_stopped_before_notice"  # closed after proof
    NO_ROUTE = "no_route"  # the DID has no route in CALLREC_ROUTES and no default (failed)
    CALLER_REFUSED = "caller_refused"  # a marked caller, treatment refuse (outcome refused)
    CALLREC_STOPPING = "callrec_stopping"  # arrived while callrec shut down: app-down path
    APP_DOWN = "app_down"  # set by the dialplan: callrec was not running
    # ledger entries: bridged calls that never went through a callrec door (ari_app/bridges.py)
    INTERNAL_CALL = "internal_call"
    NOT_ROUTED_THROUGH_CALLREC = "not_routed_through_callrec"
    # interrupted: verified and announced, then it stopped or broke before the call ended
    RECORDING_STOPPED_MID_CALL = "recording_stopped_mid_call"
    RECORDING_NOT_GROWING = "recording_not_growing"  # file stalled (notice.stall_alert_s)
    RECORDING_NOT_CLOSED = "recording_not_closed"  # still open notice.close_timeout_s after
    RECORDING_WRITER_DIED = "recording_writer_died"  # header unfinished: its writer died
    ASTERISK_RESTARTED = "asterisk_restarted"  # the call went down with Asterisk
    RECORDING_NOT_RESUMED = "recording_not_resumed"  # a pause ended, recording not proven since
    # either: callrec itself failed the call
    CALLREC_ERROR = "callrec_error"
    CALLREC_SHUTDOWN = "callrec_shutdown"  # cancelled by a shutdown before its hand-off
