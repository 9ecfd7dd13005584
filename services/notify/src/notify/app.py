"""notify's composition root: settings → engine → provider client → handlers, sender, API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gridline_boot.db import create_engine
from gridline_boot.http import install_error_handlers, install_observability
from gridline_boot.logging import configure_logging
from gridline_messaging.consumer import Consumer
from gridline_messaging.runtime import MessagingRuntime
from gridline_pii import Keyring

from . import store, syncback
from .api import build_receipts_router, build_router
from .channels import ChannelSender, WechatChannel, WecomChannel
from .domain import RetryPolicy, TenantLimits
from .handlers import Handlers
from .providers.aliyun_sms import AliyunSmsClient
from .providers.base import SmsProvider
from .providers.tencent_sms import TencentSmsClient
from .providers.wechat import WechatSubscribeClient
from .providers.wecom import WecomAppClient
from .rules_api import build_rules_router
from .sender import Route, Sender
from .settings import NotifySettings, TemplateRef
from .transport import make_client
from .unit_of_work import FlushingSession


def make_provider(
    kind: str,
    http: httpx.AsyncClient,
    *,
    key_id: str,
    secret: str,
    base_url: str,
    sdk_app_id: str,
    timeout_s: float,
    tencent_max_param_chars: int | None = None,
) -> SmsProvider:
    if kind == "tencent":
        return TencentSmsClient(
            http,
            secret_id=key_id,
            secret_key=secret,
            sdk_app_id=sdk_app_id,
            base_url=base_url,
            timeout_s=timeout_s,
            max_param_chars=tencent_max_param_chars,
        )
    return AliyunSmsClient(http, access_key_id=key_id, access_key_secret=secret, base_url=base_url, timeout_s=timeout_s)


def make_routes(settings: NotifySettings, http: httpx.AsyncClient) -> list[Route]:
    """The SMS providers in failover order: the primary (flat settings), then ``sms_failover``."""
    primary = make_provider(
        settings.sms_provider,
        http,
        key_id=settings.sms_access_key_id,
        secret=settings.sms_access_key_secret.get_secret_value(),
        base_url=settings.sms_provider_base_url,
        sdk_app_id=settings.sms_sdk_app_id,
        timeout_s=settings.sms_timeout_s,
        tencent_max_param_chars=settings.tencent_sms_variable_max_chars,
    )
    routes = [
        Route(primary, settings.sms_sign_name, {k: TemplateRef(code=v) for k, v in settings.sms_templates.items()})
    ]
    f = settings.sms_failover
    if f is not None:
        client = make_provider(
            f.kind,
            http,
            key_id=f.access_key_id,
            secret=f.access_key_secret.get_secret_value(),
            base_url=f.base_url,
            sdk_app_id=f.sdk_app_id,
            timeout_s=settings.sms_timeout_s,
            tencent_max_param_chars=settings.tencent_sms_variable_max_chars,
        )
        routes.append(Route(client, f.sign_name, dict(f.templates)))
    if len({r.name for r in routes}) != len(routes):
        raise ValueError("the failover SMS provider must be a different provider from the primary")
    return routes


def make_channels(settings: NotifySettings, http: httpx.AsyncClient, pii: Keyring) -> dict[str, ChannelSender]:
    """WeChat (citizens) and WeCom (staff), each only when configured; rows for an unconfigured one fall back."""
    out: dict[str, ChannelSender] = {}
    if settings.wechat_appid:
        wechat = WechatSubscribeClient(
            http,
            appid=settings.wechat_appid,
            secret=settings.wechat_secret.get_secret_value(),
            base_url=settings.wechat_base_url,
            timeout_s=settings.sms_timeout_s,
            miniprogram_state=settings.wechat_miniprogram_state,
        )
        out["wechat"] = WechatChannel(wechat, settings.wechat_templates, pii)
    if settings.wecom_corpid:
        wecom = WecomAppClient(
            http,
            corpid=settings.wecom_corpid,
            corpsecret=settings.wecom_corpsecret.get_secret_value(),
            agentid=settings.wecom_agentid,
            base_url=settings.wecom_base_url,
            timeout_s=settings.sms_timeout_s,
            duplicate_check_interval_s=settings.wecom_duplicate_check_interval_s,
        )
        out["wecom"] = WecomChannel(wecom, settings.wecom_templates, pii)
    return out


def default_limits(settings: NotifySettings) -> TenantLimits:
    return TenantLimits(
        quiet_start=settings.quiet_start,
        quiet_end=settings.quiet_end,
        per_recipient_hour=settings.per_recipient_hour,
        per_recipient_day=settings.per_recipient_day,
    )


def retry_policy(settings: NotifySettings) -> RetryPolicy:
    return RetryPolicy(
        max_attempts=settings.sender_max_attempts,
        per_provider_attempts=settings.sender_per_provider_attempts,
        backoff_base_s=settings.sender_backoff_base_s,
        backoff_cap_s=settings.sender_backoff_cap_s,
        settle_grace_s=settings.settle_grace_s,
        settle_retry_s=settings.settle_retry_s,
        settle_give_up_s=settings.settle_give_up_s,
    )


def create_app(settings: NotifySettings) -> FastAPI:
    configure_logging(settings.service_name, settings.log_level)
    pii = Keyring.from_spec(settings.pii_key.get_secret_value())
    transit = Keyring.from_spec(settings.pii_transit_key.get_secret_value())
    handlers = Handlers(pii=pii, transit=transit, default_limits=default_limits(settings))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(settings.database_url, pool_size=settings.db_pool_size, schema=store.SCHEMA)
        # Buffers the consumer's per-event writes and flushes them per batch (unit_of_work).
        sessions: async_sessionmaker[AsyncSession] = async_sessionmaker(
            engine, expire_on_commit=False, class_=FlushingSession
        )
        http = make_client(settings.http_max_connections, settings.sms_timeout_s)
        runtime = MessagingRuntime(settings, engine=engine, sessions=sessions, outbox=store.outbox, inbox=store.inbox)
        app.state.sessions = sessions
        app.state.runtime = runtime
        await runtime.start()
        if "consumer" in settings.roles:
            # Built here rather than by the runtime so the group and topics are configurable.
            consumer = Consumer(
                service=settings.service_name,
                group_id=settings.consumer_group,
                topics=settings.consume_topics,
                handlers=handlers.table(),
                session_factory=sessions,
                inbox=store.inbox,
                producer=runtime.producer,
                bootstrap_servers=settings.kafka_bootstrap_servers,
                max_attempts=settings.consumer_max_attempts,
                backoff_initial_s=settings.consumer_backoff_initial_s,
                backoff_max_s=settings.consumer_backoff_max_s,
                batch_max=settings.consumer_batch_max,
            )
            runtime.consumer = consumer
            runtime.tasks.start("consumer", consumer.run(), consumer.stop)
        if "worker" in settings.roles:
            sender = Sender(
                sessions=sessions,
                routes=make_routes(settings, http),
                pii=pii,
                policy=retry_policy(settings),
                batch_max=settings.sender_batch_max,
                pipelines=settings.sender_pipelines,
                call_timeout_s=settings.sms_timeout_s,
                poll_interval_s=settings.sender_poll_interval_s,
                interrupted_after_s=settings.interrupted_after_s,
                default_limits=default_limits(settings),
                receipt_expiry_s=settings.receipt_expiry_s,
                pull_tencent_receipts=settings.tencent_pull_receipts,
                channels=make_channels(settings, http, pii),
            )
            runtime.tasks.start("sender", sender.run(), sender.stop)
            pusher = syncback.SyncbackWorker(
                sessions=sessions,
                http=http,
                pii=pii,
                timeout_s=settings.syncback_timeout_s,
                concurrency=settings.syncback_concurrency,
                backoff_base_s=settings.syncback_backoff_base_s,
                backoff_cap_s=settings.syncback_backoff_cap_s,
                poll_interval_s=settings.syncback_poll_interval_s,
                configured=settings.syncback_endpoints,
            )
            runtime.tasks.start("syncback", pusher.run(), pusher.stop)
        try:
            yield
        finally:
            await runtime.stop()
            await http.aclose()
            await engine.dispose()

    app = FastAPI(title="Gridline notify", version="1", lifespan=lifespan)
    install_error_handlers(app)
    install_observability(app, lambda: app.state.runtime.checks())

    app.state.pii = pii
    app.state.tencent_variable_max_chars = settings.tencent_sms_variable_max_chars
    if "api" in settings.roles:
        app.include_router(build_router())
        token = settings.receipt_token.get_secret_value() if settings.receipt_token else None
        app.include_router(build_receipts_router(token))
        app.include_router(syncback.build_router())
        app.include_router(build_rules_router())
    return app
