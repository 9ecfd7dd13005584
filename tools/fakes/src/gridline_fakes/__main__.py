"""Run a fake provider: ``python -m gridline_fakes {aliyun-sms,tencent-sms,hotline12345,wechat,wecom} --port N``.

Flags override the environment variables named in each fake's module docstring, which override
the fakes' test defaults. Access logs stay off: request lines can carry phone numbers.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence

import uvicorn
from fastapi import FastAPI

from gridline_fakes import aliyun_sms, hotline12345, tencent_sms, wechat, wecom


def _env_list(name: str, sep: str = ",") -> list[str]:
    return [item.strip() for item in os.environ.get(name, "").split(sep) if item.strip()]


def _pairs(items: Sequence[str], what: str) -> dict[str, str]:
    """`ID:SECRET` items → dict; the secret may itself contain ':'."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition(":")
        if not sep or not key or not value:
            raise SystemExit(f"bad {what} {item.split(':', 1)[0]!r}: expected ID:SECRET")
        out[key] = value
    return out


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m gridline_fakes", description=__doc__)
    sub = parser.add_subparsers(dest="fake", required=True)
    for name, help_ in (("aliyun-sms", "Aliyun Dysmsapi SendSms"), ("tencent-sms", "Tencent Cloud SMS SendSms")):
        p = sub.add_parser(name, help=help_)
        p.add_argument("--host", default="127.0.0.1")
        p.add_argument("--port", type=int, required=True)
        p.add_argument("--key", action="append", default=[], help="ID:SECRET (repeatable)")
        p.add_argument("--sign-name", action="append", default=[], help="approved sign name (repeatable)")
        p.add_argument("--template", action="append", default=[], help="approved template (repeatable)")
        p.add_argument("--per-hour", type=int)
        p.add_argument("--per-day", type=int)
        p.add_argument("--balance", type=int)
        p.add_argument("--log-level", default="info")
        p.add_argument("--report-url", help="push a delivery receipt for every accepted send to this URL")
        p.add_argument("--workers", type=int, default=1, help="uvicorn worker processes (state is per worker)")
        if name == "aliyun-sms":
            p.add_argument("--per-minute", type=int)
        else:
            p.add_argument("--sdk-app-id", action="append", default=[], help="SmsSdkAppId (repeatable)")
            p.add_argument("--per-30s-same-content", type=int)
    h = sub.add_parser("hotline12345", help="a 12345 platform's status callback endpoint")
    h.add_argument("--host", default="127.0.0.1")
    h.add_argument("--port", type=int, required=True)
    h.add_argument("--key", action="append", default=[], help="API-KEY:SECRET (repeatable)")
    h.add_argument("--max-skew-s", type=float, default=hotline12345.DEFAULT_MAX_SKEW_S)
    h.add_argument("--log-level", default="info")
    h.add_argument("--workers", type=int, default=1, help="uvicorn worker processes (state is per worker)")
    w = sub.add_parser("wechat", help="WeChat mini-program stable_token + subscribeMessage.send")
    w.add_argument("--host", default="127.0.0.1")
    w.add_argument("--port", type=int, required=True)
    w.add_argument("--app", action="append", default=[], help="APPID:SECRET (repeatable)")
    w.add_argument("--template", action="append", default=[], help="TEMPLATE_ID:key1,key2 (repeatable)")
    w.add_argument("--page", action="append", default=None, help="a page of the live version (repeatable)")
    w.add_argument("--log-level", default="info")
    w.add_argument("--workers", type=int, default=1)
    c = sub.add_parser("wecom", help="WeCom gettoken + application message/send")
    c.add_argument("--host", default="127.0.0.1")
    c.add_argument("--port", type=int, required=True)
    c.add_argument("--corp", default=wecom.DEFAULT_CORP, help="corpid")
    c.add_argument("--app", action="append", default=[], help="AGENTID:SECRET (repeatable)")
    c.add_argument("--user", action="append", default=[], help="member userid (repeatable)")
    c.add_argument("--log-level", default="info")
    c.add_argument("--workers", type=int, default=1)
    return parser


def _wechat(args: argparse.Namespace) -> FastAPI:
    templates: dict[str, list[str]] = {}
    for item in args.template:
        template_id, _, keys = item.partition(":")
        templates[template_id.strip()] = [k.strip() for k in keys.split(",") if k.strip()]
    return wechat.create_app(_pairs(args.app, "app") or None, templates=templates or None, pages=args.page)


def _wecom(args: argparse.Namespace) -> FastAPI:
    apps = {int(k): v for k, v in _pairs(args.app, "app").items()} or None
    return wecom.create_app(args.corp, apps, users=args.user or wecom.DEFAULT_USERS)


def _aliyun(args: argparse.Namespace) -> FastAPI:
    prefix = "GRIDLINE_FAKE_ALIYUN_SMS_"
    keys = _pairs(args.key or _env_list(prefix + "KEYS"), "key") or aliyun_sms.DEFAULT_KEYS
    signs = args.sign_name or _env_list(prefix + "SIGN_NAMES") or aliyun_sms.DEFAULT_SIGN_NAMES
    templates: dict[str, list[str]] = {}
    for item in args.template or _env_list(prefix + "TEMPLATES", ";"):
        code, _, variables = item.partition(":")
        templates[code.strip()] = [v.strip() for v in variables.split(",") if v.strip()]
    defaults = aliyun_sms.FlowLimits()
    limits = aliyun_sms.FlowLimits(
        per_minute=args.per_minute if args.per_minute is not None else defaults.per_minute,
        per_hour=args.per_hour if args.per_hour is not None else defaults.per_hour,
        per_day=args.per_day if args.per_day is not None else defaults.per_day,
    )
    return aliyun_sms.create_app(
        keys,
        sign_names=signs,
        templates=templates or None,
        flow_limits=limits,
        balance=args.balance,
        report_url=args.report_url,
    )


def _tencent(args: argparse.Namespace) -> FastAPI:
    prefix = "GRIDLINE_FAKE_TENCENT_SMS_"
    keys = _pairs(args.key or _env_list(prefix + "KEYS"), "key") or tencent_sms.DEFAULT_KEYS
    app_ids = args.sdk_app_id or _env_list(prefix + "SDK_APP_IDS") or tencent_sms.DEFAULT_SDK_APP_IDS
    signs = args.sign_name or _env_list(prefix + "SIGN_NAMES") or tencent_sms.DEFAULT_SIGN_NAMES
    templates: dict[str, int] = {}
    for item in args.template or _env_list(prefix + "TEMPLATES", ";"):
        template_id, _, count = item.partition(":")
        templates[template_id.strip()] = int(count or 0)
    defaults = tencent_sms.FlowLimits()
    limits = tencent_sms.FlowLimits(
        per_30s_same_content=(
            args.per_30s_same_content if args.per_30s_same_content is not None else defaults.per_30s_same_content
        ),
        per_hour=args.per_hour if args.per_hour is not None else defaults.per_hour,
        per_day=args.per_day if args.per_day is not None else defaults.per_day,
    )
    return tencent_sms.create_app(
        keys,
        sdk_app_ids=app_ids,
        sign_names=signs,
        templates=templates or None,
        flow_limits=limits,
        balance=args.balance,
        report_url=args.report_url,
    )


def _hotline(args: argparse.Namespace) -> FastAPI:
    keys = _pairs(args.key or _env_list("GRIDLINE_FAKE_HOTLINE12345_KEYS"), "key") or hotline12345.DEFAULT_KEYS
    return hotline12345.create_app(keys, max_skew_s=args.max_skew_s)


def build(argv: Sequence[str] | None = None) -> tuple[FastAPI, argparse.Namespace]:
    args = _parser().parse_args(argv)
    builders = {
        "aliyun-sms": _aliyun,
        "tencent-sms": _tencent,
        "hotline12345": _hotline,
        "wechat": _wechat,
        "wecom": _wecom,
    }
    return builders[args.fake](args), args


_ARGV_ENV = "GRIDLINE_FAKE_ARGV"


def from_env() -> FastAPI:
    """App factory for uvicorn's worker processes: each rebuilds the fake from the parent's argv."""
    return build(json.loads(os.environ[_ARGV_ENV]))[0]


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    app, args = build(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    if args.workers > 1:
        # Several processes for throughput runs: messages, nonces and counters are per worker then.
        os.environ[_ARGV_ENV] = json.dumps(argv)
        uvicorn.run(
            "gridline_fakes.__main__:from_env",
            factory=True,
            workers=args.workers,
            host=args.host,
            port=args.port,
            access_log=False,
            log_level=args.log_level,
        )
        return
    uvicorn.run(app, host=args.host, port=args.port, access_log=False, log_level=args.log_level)


if __name__ == "__main__":
    main()
