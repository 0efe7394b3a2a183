"""Request guards without a server: the nesting scan, the token bucket, log redaction."""

from __future__ import annotations

import json
import logging

from api.guards import RateLimiter, json_depth_exceeds, rate_limited
from api.logging import JsonFormatter, redact, register_secret
from api.masking import Masker


def test_depth_scan_counts_only_structural_brackets():
    assert not json_depth_exceeds(b'{"a": [1, {"b": 2}]}', 3)
    assert json_depth_exceeds(b'{"a": [1, {"b": [2]}]}', 3)
    assert not json_depth_exceeds(b'{"a": "[[[[[[[[", "b": "\\"[[[["}', 1)
    assert not json_depth_exceeds(b"", 1)


def test_bucket_allows_a_burst_then_refills_at_the_rate():
    now = [0.0]
    limiter = RateLimiter(60, clock=lambda: now[0])
    assert [limiter.take("k") for _ in range(60)] == [0.0] * 60
    assert limiter.take("k") > 0
    assert limiter.take("other") == 0.0
    now[0] += 1.0
    assert limiter.take("k") == 0.0
    assert limiter.take("k") > 0


def test_erp_hooks_are_the_rate_limited_endpoints():
    assert rate_limited("messages.send_message")
    assert rate_limited("instances.start")
    assert not rate_limited("instances.list_instances")
    assert not rate_limited("definitions.deploy")


def test_tokens_keys_and_secrets_are_redacted_from_log_text():
    register_secret("s3cret-signing-key-value")
    text = (
        "Authorization: Bearer abc.def.ghi key fgk_AbCdEf0123456789_-xyz "
        "token eyJzdWIiOiJhbm4iLCJyb2xlcyI6WyJhbmFseXN0Il0.awQfag.PY4jF_YSGnLmtntnc3C_nUsFAtc "
        'secret="hunter22" {"password": "pw123456"} s3cret-signing-key-value'
    )
    cleaned = redact(text)
    for leaked in (
        "abc.def.ghi",
        "AbCdEf0123456789",
        "PY4jF_YSGnLmtntnc3C",
        "hunter22",
        "pw123456",
        "s3cret-signing",
    ):
        assert leaked not in cleaned


def test_log_lines_are_json_with_extras():
    record = logging.LogRecord(
        "flowgate", logging.INFO, __file__, 1, "hello %s", ("fgk_leak123456",), None
    )
    record.path = "/api/v1/messages"
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "hello fgk_[redacted]" and line["path"] == "/api/v1/messages"
    assert line["level"] == "INFO" and line["ts"].endswith("+00:00")


def test_masking_hides_sensitive_names_at_any_depth():
    masker = Masker(("*bank_account*", "*phone*"), ("auditor",))
    value = {
        "supplier": {"name": "Acme", "bank_account": "CN12345678901234", "Contact_Phone": "1234"},
        "lines": [{"iban_bank_account_no": None, "qty": 1}],
    }
    assert masker.mask(value) == {
        "supplier": {"name": "Acme", "bank_account": "***1234", "Contact_Phone": "***"},
        "lines": [{"iban_bank_account_no": None, "qty": 1}],
    }
    assert masker.may_see(frozenset({"auditor"})) and not masker.may_see(frozenset({"cfo"}))
