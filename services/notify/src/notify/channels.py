"""The non-SMS channels as the sender sees them: a notification row in, one provider call, a SendResult out."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol

from gridline_pii import Keyring

from .domain import SHANGHAI
from .planning import ADDRESS_PURPOSE
from .providers.base import Lookup, SendResult
from .providers.wechat import WechatMessage, WechatSubscribeClient
from .providers.wecom import WecomAppClient, WecomMessage
from .rules import DEFAULT_WECOM_TEXT, fit_wechat_value, render
from .settings import WechatTemplate, WecomTemplate


class ChannelSender(Protocol):
    name: str

    async def send(self, row: Any) -> SendResult: ...

    async def lookup(self, row: Any, started: datetime) -> Lookup: ...


def _values(row: Any) -> dict[str, str]:
    created: datetime | None = getattr(row, "created_at", None)
    extra = {"created": created.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M")} if created else {}
    return {**dict(row.params), **extra}


def _unusable(name: str, code: str, message: str) -> SendResult:
    # Nothing was sent; the next channel (SMS) may reach the recipient.
    return SendResult(name, "rejected", None, code, message, fallback=True)


class WechatChannel:
    name = "wechat"

    def __init__(self, client: WechatSubscribeClient, templates: Mapping[str, WechatTemplate], pii: Keyring) -> None:
        self.client = client
        self.templates = dict(templates)
        self.pii = pii

    def message(self, row: Any) -> WechatMessage | SendResult:
        tpl = self.templates.get(row.template)
        if tpl is None:
            return _unusable(self.name, "no_template", "未配置订阅消息模板")
        if row.address_sealed is None:
            return _unusable(self.name, "no_address", "无 openid")
        values = _values(row)
        return WechatMessage(
            openid=self.pii.open(row.address_sealed, ADDRESS_PURPOSE["wechat"]),
            template_id=tpl.template_id,
            data={key: fit_wechat_value(key, render(text, values)) for key, text in tpl.data.items()},
            page=render(tpl.page, values) if tpl.page else None,
            out_id=str(row.attempt_id),
        )

    async def send(self, row: Any) -> SendResult:
        msg = self.message(row)
        return msg if isinstance(msg, SendResult) else await self.client.send(msg)

    async def lookup(self, row: Any, started: datetime) -> Lookup:
        return await self.client.lookup("", str(row.attempt_id), started.timestamp())


class WecomChannel:
    name = "wecom"

    def __init__(self, client: WecomAppClient, templates: Mapping[str, WecomTemplate], pii: Keyring) -> None:
        self.client = client
        self.templates = dict(templates)
        self.pii = pii

    def message(self, row: Any) -> WecomMessage | SendResult:
        if row.address_sealed is None:
            return _unusable(self.name, "no_address", "无企业微信账号")
        tpl = self.templates.get(row.template)
        if tpl is None and row.template in DEFAULT_WECOM_TEXT:
            tpl = WecomTemplate(content=DEFAULT_WECOM_TEXT[row.template])
        if tpl is None:
            return _unusable(self.name, "no_template", "未配置企业微信消息模板")
        # Only the row's own values: a resend must rebuild byte-identical JSON for WeCom's duplicate check.
        values = dict(row.params)
        return WecomMessage(
            userid=self.pii.open(row.address_sealed, ADDRESS_PURPOSE["wecom"]),
            msgtype=tpl.msgtype,
            content=render(tpl.content, values),
            title=render(tpl.title, values),
            url=render(tpl.url, values),
            out_id=str(row.attempt_id),
        )

    async def send(self, row: Any) -> SendResult:
        msg = self.message(row)
        return msg if isinstance(msg, SendResult) else await self.client.send(msg)

    async def lookup(self, row: Any, started: datetime) -> Lookup:
        return await self.client.lookup("", str(row.attempt_id), started.timestamp())


def not_configured(channel: str) -> SendResult:
    return _unusable(channel, "channel_not_configured", f"{channel} 渠道未配置")
