"""The composition root: the one place adapters are built (lazily, once per process)."""

from __future__ import annotations

from functools import cache

from crm.adapters.currency import DynamoCurrencyStore, SqsCurrencyTasks
from crm.adapters.export_files import S3ExportFiles
from crm.adapters.export_jobs import DynamoExportJobStore
from crm.adapters.flow_definitions import DynamoFlowCatalogue, DynamoMessagingStore
from crm.adapters.flow_runs import DynamoRunStore
from crm.adapters.flow_stats import DynamoAttributions, DynamoFlowCounters, DynamoMessageLedger, DynamoSplitWinners
from crm.adapters.links import DynamoShortLinks, SqsLinkNotices
from crm.adapters.messaging import (
    EventBridgePublisher,
    FirehoseS3Archive,
    S3ArchiveStore,
    SqsExportQueue,
    SqsIngestQueue,
    SqsPrivacyQueue,
)
from crm.adapters.privacy import DynamoPrivacyStore
from crm.adapters.profiles import DynamoProfileRepository
from crm.adapters.scheduler import EventBridgeWaitScheduler
from crm.adapters.secrets import LinkSigningKeys
from crm.adapters.segment_runs import DynamoSegmentRuns, SqsTaskQueue
from crm.adapters.segments import DynamoSegmentStore
from crm.adapters.sender_identities import SesSenderIdentities
from crm.adapters.ses import SesEmailSender
from crm.adapters.sns import SnsSmsSender
from crm.adapters.stores import DynamoStoreDirectory
from crm.adapters.suppressions import DynamoSuppressions
from crm.clock import utc_now
from crm.config import settings
from crm.flows.catalogue import CatalogueCache, HeldWinners
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
from crm.messaging.optin import OptInMessages
from crm.messaging.shortlinks import ShortLinks, SmsLinks
from crm.messaging.unsubscribe import Links
from crm.ports import (
    ArchiveStore,
    CurrencyStore,
    CurrencyTasks,
    EventPublisher,
    ExportFiles,
    ExportJobStore,
    ExportQueue,
    IngestQueue,
    PrivacyQueue,
    PrivacyStore,
    ProfileRepository,
    RawArchive,
    SegmentRuns,
    SegmentStore,
    StoreDirectory,
    TaskQueue,
)


@cache
def store_directory() -> StoreDirectory:
    return DynamoStoreDirectory()


@cache
def profile_repository() -> ProfileRepository:
    return DynamoProfileRepository()


@cache
def segment_store() -> SegmentStore:
    return DynamoSegmentStore()


@cache
def raw_archive() -> RawArchive:
    return FirehoseS3Archive()


@cache
def ingest_queue() -> IngestQueue:
    return SqsIngestQueue()


@cache
def event_publisher() -> EventPublisher:
    return EventBridgePublisher()


@cache
def privacy_store() -> PrivacyStore:
    return DynamoPrivacyStore()


@cache
def privacy_queue() -> PrivacyQueue:
    return SqsPrivacyQueue()


@cache
def archive_store() -> ArchiveStore:
    return S3ArchiveStore()


@cache
def segment_runs() -> SegmentRuns:
    return DynamoSegmentRuns()


@cache
def segment_tasks() -> TaskQueue:
    return SqsTaskQueue()


@cache
def export_jobs() -> ExportJobStore:
    return DynamoExportJobStore()


@cache
def export_queue() -> ExportQueue:
    return SqsExportQueue()


@cache
def export_files() -> ExportFiles:
    return S3ExportFiles()


@cache
def currency_store() -> CurrencyStore:
    return DynamoCurrencyStore()


@cache
def currency_tasks() -> CurrencyTasks:
    return SqsCurrencyTasks()


@cache
def link_signing_keys() -> LinkSigningKeys:
    return LinkSigningKeys()


def links() -> Links:
    """Signs the links of the emails being sent now (the keys are re-read after their cache expires)."""
    return Links(link_signing_keys().keys(), settings().require("public_api_url"))


@cache
def flow_runs() -> RunStore:
    return DynamoRunStore()


@cache
def wait_scheduler() -> WaitScheduler:
    return EventBridgeWaitScheduler()


@cache
def flow_catalogue() -> FlowCatalogue:
    """The marketer API's: every read fresh, and its writes forget what held_flow_catalogue() holds here."""
    return CatalogueCache(DynamoFlowCatalogue())


def held_flow_catalogue() -> FlowCatalogue:
    """The flows function's: a workspace's listing held a while per container (crm.flows.catalogue)."""
    catalogue = flow_catalogue()
    return catalogue.held() if isinstance(catalogue, CatalogueCache) else catalogue


@cache
def messaging_store() -> MessagingStore:
    return DynamoMessagingStore()


@cache
def sender_identities() -> SenderIdentities:
    return SesSenderIdentities()


@cache
def suppressions() -> Suppressions:
    return DynamoSuppressions()


@cache
def email_sender() -> EmailSender:
    return SesEmailSender()


@cache
def sms_sender() -> SmsSender:
    return SnsSmsSender()


@cache
def message_composer() -> MessageComposer:
    return OptInMessages(links, sms_links)


@cache
def short_links() -> ShortLinks:
    return DynamoShortLinks()


def sms_links() -> SmsLinks:
    """Shortens the links of the SMS being sent now (signed with the link key of the moment)."""
    return SmsLinks(link_signing_keys().keys(), settings().require("public_api_url"), short_links())


@cache
def link_notices() -> SqsLinkNotices:
    return SqsLinkNotices()


@cache
def message_ledger() -> MessageLedger:
    return DynamoMessageLedger()


@cache
def flow_counters() -> FlowCounters:
    return DynamoFlowCounters()


@cache
def attributions() -> Attributions:
    return DynamoAttributions()


@cache
def split_winners() -> SplitWinners:
    return DynamoSplitWinners()


@cache
def held_split_winners() -> SplitWinners:
    """The flows function's: winners held a while per container (crm.flows.catalogue.HeldWinners)."""
    return HeldWinners(split_winners())


def feedback_deps() -> FeedbackDeps:
    """SES feedback and inbound SMS (crm.messaging.feedback): the messaging store is read only for an SMS."""
    return FeedbackDeps(suppressions=suppressions(), profiles=profile_repository(), archive=raw_archive(),
                        ingest=ingest_queue(), workspaces=lambda: store_directory().workspaces(),
                        messaging_settings=lambda workspace: messaging_store().messaging_settings(workspace),
                        events=message_events())


def message_events() -> MessageEvents:
    """What became of flow messages: on the message, its flow's counters and the profile's timeline."""
    return MessageEvents(ledger=message_ledger(), counters=flow_counters(), profiles=profile_repository())


def flows_service() -> FlowsService:
    return FlowsService(catalogue=held_flow_catalogue(), runs=flow_runs(), scheduler=wait_scheduler(),
                        profiles=profile_repository(), segments=segment_store(), messaging=messaging_store(),
                        suppressions=suppressions(), email=email_sender(), sms=sms_sender(),
                        composer=message_composer(), clock=utc_now, ledger=message_ledger(),
                        counters=flow_counters(), winners=held_split_winners())


def conversions_service() -> ConversionsService:
    return ConversionsService(ledger=message_ledger(), attributions=attributions(), counters=flow_counters(),
                              runs=flow_runs(), profiles=profile_repository(), messaging=messaging_store(),
                              currency=currency_store(), clock=utc_now, catalogue=held_flow_catalogue())


def reset() -> None:
    """Forget built adapters (tests and the local runtime change the environment)."""
    for factory in (store_directory, profile_repository, raw_archive, ingest_queue, event_publisher, privacy_store,
                    archive_store, segment_store, segment_runs, segment_tasks, export_jobs, export_queue, export_files,
                    currency_store, currency_tasks, privacy_queue, flow_runs, wait_scheduler,
                    flow_catalogue, messaging_store, suppressions, email_sender, sms_sender, message_composer,
                    link_signing_keys, sender_identities, message_ledger, flow_counters, attributions,
                    split_winners, held_split_winners, short_links, link_notices):
        factory.cache_clear()
