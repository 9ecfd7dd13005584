"""SMS provider clients: one async class per provider behind the `SmsProvider` protocol."""

from notify.providers.aliyun_sms import AliyunSmsClient
from notify.providers.base import SendResult, SmsMessage, SmsProvider
from notify.providers.tencent_sms import TencentSmsClient

__all__ = ["AliyunSmsClient", "SendResult", "SmsMessage", "SmsProvider", "TencentSmsClient"]
