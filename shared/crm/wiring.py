"""The composition root: the one place adapters are built (lazily, once per process).

Each factory imports its adapter when first called: a function's cold start then loads only what it wires
(the webhooks function needs no flows, segments or messaging code; bench/cold_start.py measures it).
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

from crm.clock import utc_now
from crm.config import client_settings, settings

if TYPE_CHECKING:
    from collections.abc import Callable

    from crm.adapters.links import SqsLinkNotices
    from crm.adapters.secrets import LinkSigningKeys
    from crm.adapters.users import CognitoUsers
    from crm.flows.conversions import ConversionsService
    from crm.flows.ports import (
        Attributions,
        EmailSender,
        FlowCatalogue,
        FlowCounters,
        MessageLedger,
        MessagingStore,
        RunStore,
        SenderIdentities,
        SmsSender,
        SplitWinners,
        Suppressions,
        WaitScheduler,
    )
    from crm.flows.service import FlowsService, MessageComposer
    from crm.messaging.feedback import FeedbackDeps, MessageEvents
    from crm.messaging.shortlinks import ShortLinks, SmsLinks
    from crm.messaging.unsubscribe import Links
    from crm.ports import (
        AffinityStore,
        ArchiveStore,
        CurrencyStore,
        CurrencyTasks,
        EventPublisher,
        ExportFiles,
        ExportJobStore,
        ExportQueue,
        IngestQueue,
        PredictionStore,
        PrivacyQueue,
        PrivacyStore,
        ProfileRepository,
        RawArchive,
        SecretVault,
        SegmentRuns,
        SegmentStore,
        StoreDirectory,
        TaskQueue,
    )
    from crm.reports.query import ReportSource


@cache
def store_directory() -> StoreDirectory:
    from crm.adapters.stores import DynamoStoreDirectory
    return DynamoStoreDirectory()


@cache
def profile_repository() -> ProfileRepository:
    from crm.adapters.profiles import DynamoProfileRepository
    return DynamoProfileRepository()


@cache
def segment_store() -> SegmentStore:
    from crm.adapters.segments import DynamoSegmentStore
    return DynamoSegmentStore()


@cache
def raw_archive() -> RawArchive:
    from crm.adapters.messaging import FirehoseS3Archive
    return FirehoseS3Archive()


@cache
def ingest_queue() -> IngestQueue:
    from crm.adapters.messaging import SqsIngestQueue
    return SqsIngestQueue()


@cache
def event_publisher() -> EventPublisher:
    from crm.adapters.outbox_targets import outbox_publisher
    return outbox_publisher()


@cache
def privacy_store() -> PrivacyStore:
    from crm.adapters.privacy import DynamoPrivacyStore
    return DynamoPrivacyStore()


@cache
def privacy_queue() -> PrivacyQueue:
    from crm.adapters.messaging import SqsPrivacyQueue
    return SqsPrivacyQueue()


@cache
def archive_store() -> ArchiveStore:
    from crm.adapters.messaging import S3ArchiveStore
    return S3ArchiveStore()


@cache
def segment_runs() -> SegmentRuns:
    from crm.adapters.segment_runs import DynamoSegmentRuns
    return DynamoSegmentRuns()


@cache
def segment_tasks() -> TaskQueue:
    from crm.adapters.segment_runs import SqsTaskQueue
    return SqsTaskQueue()


def segment_task_pause() -> Callable[[], int]:
    """From now, how long a chained segment task's next share waits (crm.adapters.pacing; 0 when not paced)."""
    from crm.adapters.clients import dynamodb_meter
    meter = dynamodb_meter()
    if meter is None:
        return lambda: 0
    start = meter.reading()
    return lambda: meter.pause_since(start)


def fit_write_pause() -> Callable[[], int]:
    """From now, how far the predictions fit's writes ran ahead of their pace (the same meter as the segment
    tasks', DYNAMODB_UNITS_PER_SECOND on the predictions function; 0 when not paced)."""
    return segment_task_pause()


def segment_hop_spent() -> Callable[[], bool]:
    """From now, whether a chained segment task's hop has consumed its share of the pace (SEGMENT_HOP_SECONDS of
    it; never when not paced: the share is then read whole)."""
    from crm.adapters.clients import dynamodb_meter
    meter = dynamodb_meter()
    if meter is None:
        return lambda: False
    start, seconds = meter.reading(), client_settings().segment_hop_seconds
    return lambda: meter.paced_seconds_since(start) >= seconds


@cache
def export_jobs() -> ExportJobStore:
    from crm.adapters.export_jobs import DynamoExportJobStore
    return DynamoExportJobStore()


@cache
def export_queue() -> ExportQueue:
    from crm.adapters.messaging import SqsExportQueue
    return SqsExportQueue()


@cache
def export_files() -> ExportFiles:
    from crm.adapters.export_files import S3ExportFiles
    return S3ExportFiles()


@cache
def currency_store() -> CurrencyStore:
    from crm.adapters.currency import DynamoCurrencyStore
    return DynamoCurrencyStore()


@cache
def prediction_store() -> PredictionStore:
    from crm.adapters.predictions import DynamoPredictionStore
    return DynamoPredictionStore()


@cache
def affinity_store() -> AffinityStore:
    from crm.adapters.affinity import DynamoAffinityStore
    return DynamoAffinityStore()


@cache
def currency_tasks() -> CurrencyTasks:
    from crm.adapters.currency import SqsCurrencyTasks
    return SqsCurrencyTasks()


@cache
def link_signing_keys() -> LinkSigningKeys:
    from crm.adapters.secrets import LinkSigningKeys
    return LinkSigningKeys()


@cache
def console_session_keys() -> LinkSigningKeys:
    """The keys the console's session cookies and CSRF tokens are signed with (a secret of their own)."""
    from crm.adapters.secrets import LinkSigningKeys
    return LinkSigningKeys(settings().require("console_session_secret"))


@cache
def console_users() -> CognitoUsers:
    from crm.adapters.users import CognitoUsers
    return CognitoUsers()


def store_vault() -> SecretVault:
    """Store secrets read afresh (not cached): the console's rotation adds to what the vault holds now."""
    from datetime import timedelta

    from crm.adapters.secrets import SecretsManagerVault
    return SecretsManagerVault(ttl=timedelta(0))


def links() -> Links:
    """Signs the links of the emails being sent now (the keys are re-read after their cache expires)."""
    from crm.messaging.unsubscribe import Links
    return Links(link_signing_keys().keys(), settings().require("public_api_url"))


@cache
def flow_runs() -> RunStore:
    from crm.adapters.flow_runs import DynamoRunStore
    return DynamoRunStore()


@cache
def wait_scheduler() -> WaitScheduler:
    from crm.adapters.scheduler import EventBridgeWaitScheduler
    return EventBridgeWaitScheduler()


@cache
def flow_catalogue() -> FlowCatalogue:
    """The marketer API's: every read fresh, and its writes forget what held_flow_catalogue() holds here."""
    from crm.adapters.flow_definitions import DynamoFlowCatalogue
    from crm.flows.catalogue import CatalogueCache
    return CatalogueCache(DynamoFlowCatalogue())


def held_flow_catalogue() -> FlowCatalogue:
    """The flows function's: a workspace's listing held a while per container (crm.flows.catalogue)."""
    from crm.flows.catalogue import CatalogueCache
    catalogue = flow_catalogue()
    return catalogue.held() if isinstance(catalogue, CatalogueCache) else catalogue


@cache
def messaging_store() -> MessagingStore:
    """The marketer API's: every read fresh, and its writes forget what held_messaging_store() holds here."""
    from crm.adapters.flow_definitions import DynamoMessagingStore
    from crm.flows.catalogue import MessagingCache
    return MessagingCache(DynamoMessagingStore())


def held_messaging_store() -> MessagingStore:
    """The flows function's: settings and templates held a while per container (crm.flows.catalogue)."""
    from crm.flows.catalogue import MessagingCache
    store = messaging_store()
    return store.held() if isinstance(store, MessagingCache) else store


@cache
def sender_identities() -> SenderIdentities:
    from crm.adapters.sender_identities import SesSenderIdentities
    return SesSenderIdentities()


@cache
def suppressions() -> Suppressions:
    from crm.adapters.suppressions import DynamoSuppressions
    return DynamoSuppressions()


@cache
def email_sender() -> EmailSender:
    from crm.adapters.ses import SesEmailSender
    return SesEmailSender()


@cache
def sms_sender() -> SmsSender:
    from crm.adapters.sns import SnsSmsSender
    return SnsSmsSender()


@cache
def message_composer() -> MessageComposer:
    from crm.messaging.optin import OptInMessages
    return OptInMessages(links, sms_links, affinity_store)


@cache
def short_links() -> ShortLinks:
    from crm.adapters.links import DynamoShortLinks
    return DynamoShortLinks()


def sms_links() -> SmsLinks:
    """Shortens the links of the SMS being sent now (signed with the link key of the moment)."""
    from crm.messaging.shortlinks import SmsLinks
    return SmsLinks(link_signing_keys().keys(), settings().require("public_api_url"), short_links())


@cache
def link_notices() -> SqsLinkNotices:
    from crm.adapters.links import SqsLinkNotices
    return SqsLinkNotices()


@cache
def message_ledger() -> MessageLedger:
    from crm.adapters.flow_stats import DynamoMessageLedger
    return DynamoMessageLedger()


@cache
def flow_counters() -> FlowCounters:
    from crm.adapters.flow_stats import DynamoFlowCounters
    return DynamoFlowCounters()


@cache
def attributions() -> Attributions:
    from crm.adapters.flow_stats import DynamoAttributions
    return DynamoAttributions()


@cache
def split_winners() -> SplitWinners:
    from crm.adapters.flow_stats import DynamoSplitWinners
    return DynamoSplitWinners()


@cache
def held_split_winners() -> SplitWinners:
    """The flows function's: winners held a while per container (crm.flows.catalogue.HeldWinners)."""
    from crm.flows.catalogue import HeldWinners
    return HeldWinners(split_winners())


def feedback_deps(counters: FlowCounters | None = None) -> FeedbackDeps:
    """SES feedback and inbound SMS (crm.messaging.feedback): the messaging store is read only for an SMS
    (``counters``: where the events count, the table's by default; the flows function's batch, BatchCounters)."""
    from crm.messaging.feedback import FeedbackDeps
    return FeedbackDeps(suppressions=suppressions(), profiles=profile_repository(), archive=raw_archive(),
                        ingest=ingest_queue(), workspaces=lambda: store_directory().workspaces(),
                        messaging_settings=lambda workspace: messaging_store().messaging_settings(workspace),
                        events=message_events(counters))


def message_events(counters: FlowCounters | None = None) -> MessageEvents:
    """What became of flow messages: on the message, its flow's counters and the profile's timeline."""
    from crm.messaging.feedback import MessageEvents
    return MessageEvents(ledger=message_ledger(), counters=counters or flow_counters(),
                         profiles=profile_repository())


def flows_service(counters: FlowCounters | None = None) -> FlowsService:
    from crm.flows.service import FlowsService
    return FlowsService(catalogue=held_flow_catalogue(), runs=flow_runs(), scheduler=wait_scheduler(),
                        profiles=profile_repository(), segments=segment_store(), messaging=held_messaging_store(),
                        suppressions=suppressions(), email=email_sender(), sms=sms_sender(),
                        composer=message_composer(), clock=utc_now, ledger=message_ledger(),
                        counters=counters or flow_counters(), winners=held_split_winners())


def conversions_service(counters: FlowCounters | None = None) -> ConversionsService:
    from crm.flows.conversions import ConversionsService
    return ConversionsService(ledger=message_ledger(), attributions=attributions(),
                              counters=counters or flow_counters(),
                              runs=flow_runs(), profiles=profile_repository(), messaging=messaging_store(),
                              currency=currency_store(), clock=utc_now, catalogue=held_flow_catalogue())


def report_source() -> ReportSource:
    from crm.adapters.report_source import DynamoReportSource
    return DynamoReportSource(profiles=profile_repository(), segments=segment_store(), catalogue=flow_catalogue(),
                              counters=flow_counters(), currency=currency_store())


def reset() -> None:
    """Forget built adapters (tests and the local runtime change the environment)."""
    for factory in (store_directory, profile_repository, raw_archive, ingest_queue, event_publisher, privacy_store,
                    archive_store, segment_store, segment_runs, segment_tasks, export_jobs, export_queue, export_files,
                    currency_store, currency_tasks, prediction_store, privacy_queue, flow_runs, wait_scheduler,
                    flow_catalogue, messaging_store, suppressions, email_sender, sms_sender, message_composer,
                    link_signing_keys, sender_identities, message_ledger, flow_counters, attributions,
                    split_winners, held_split_winners, short_links, link_notices, affinity_store,
                    console_session_keys, console_users):
        factory.cache_clear()
